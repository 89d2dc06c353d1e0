"""Shared test setup: one torch thread, deterministic hypothesis, tool-dependent skips."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

try:
    import torch
except ImportError:  # pragma: no cover - torch is a pinned dependency
    torch = None
else:
    # A busy second core made two-thread inference ~80x slower on 2-core machines.
    torch.set_num_threads(1)

try:
    from hypothesis import settings

    settings.register_profile("quiver", derandomize=True, deadline=None, max_examples=200)
    settings.load_profile("quiver")
except ImportError:  # pragma: no cover
    pass


def _verilator_problem() -> str | None:
    from cosim.toolchain import ToolchainError, put_verilator_on_path

    try:
        put_verilator_on_path()
    except ToolchainError as error:
        return str(error)
    return None


def pytest_collection_modifyitems(config, items):
    problem = None
    for item in items:
        if "verilator" in item.keywords:
            problem = problem if problem is not None else (_verilator_problem() or "")
            if problem:
                item.add_marker(pytest.mark.skip(reason=problem))
