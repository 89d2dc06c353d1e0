"""The post-GELU objective's bucketed gather equals the golden codes of every element, and a wrong run
boundary is seen."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from calib.fpcs_gelu import _BUCKET_BITS, GeluQuantizerProblem


@pytest.fixture(scope="module")
def problem() -> GeluQuantizerProblem:
    generator = torch.Generator().manual_seed(21)
    x = F.gelu(torch.randn(3, 50, 64, generator=generator) * 1.5)  # 9,600 elements: 38 buckets
    weight = torch.randn(12, 64, generator=generator) * 0.2
    made = GeluQuantizerProblem(x, F.linear(x, weight), weight.double(), None, 4)
    made._prepare()
    return made


def gather(problem: GeluQuantizerProblem, values: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    return problem._gather_runs(values, problem._run_index(starts))


@pytest.mark.parametrize("q, scale", [(37, 1.0), (11, 0.855), (60, 2.5), (137, 0.3)])
def test_gathered_values_are_the_golden_codes_values(problem, q, scale):
    q_tensor, scale_tensor = torch.tensor([q]), torch.tensor([scale], dtype=torch.float32)
    starts = problem._starts(q_tensor, scale_tensor)[0]
    codes = problem._code(problem.flat.reshape(-1), q_tensor, scale_tensor).to(torch.int64)
    values = torch.arange(17, dtype=torch.float64) * 3 + 1  # a distinct value per code
    assert torch.equal(gather(problem, values, starts), values[codes])
    # Both kinds of bucket occur: whole buckets from the table and cut ones set one by one.
    assert bool((starts % (1 << _BUCKET_BITS) != 0).any()) and problem.size > 4 << _BUCKET_BITS


def test_a_moved_run_boundary_changes_the_gather(problem):
    starts = problem._starts(torch.tensor([37]), torch.tensor([1.0]))[0]
    values = torch.arange(17, dtype=torch.float64)
    moved = starts.clone()
    code = int(torch.nonzero((starts > 0) & (starts < problem.size))[0, 0])
    moved[code] -= 1  # one more sorted position in run `code`
    assert int((gather(problem, values, moved) != gather(problem, values, starts)).sum()) == 1
