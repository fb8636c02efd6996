"""Shared benchmark helpers: the machine line, the result file, timing and the matmul peak.

Every benchmark runs from the repository root as ``python -m benchmarks.NAME`` and writes
its table, headed by ``machine_line()``, to ``--output`` (default ``result_path(NAME)``).
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
from absl import app, flags

from dheads_jax.progress import quiet_library_logs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRID_DIR = os.path.join(ROOT, "data", "samples", "grid")


def result_path(name: str) -> str:
    """benchmarks/results/NAME.txt: the default ``--output`` of benchmark NAME, its table."""
    return os.path.join(ROOT, "benchmarks", "results", f"{name}.txt")


def run(main: Callable[[], Lines | None]) -> None:
    """The last line of a benchmark: when its module is the one Python runs (``python -m
    benchmarks.NAME``; an import runs nothing), runs ``main`` as a command: flags parsed, the
    libraries' INFO logs quieted, and the table it returns (if any: some write theirs as they
    go) written to ``--output``."""
    if main.__module__ != "__main__":
        return

    def command(argv: list[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        quiet_library_logs()
        table = main()
        if table is not None:
            table.save(flags.FLAGS.output)

    app.run(command)


def write_text(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` whole (a temporary file, then renamed), folders made."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


class Lines:
    """A table printed line by line as it is made, then written whole with ``save``."""

    def __init__(self, *lines: str):
        self.lines: list[str] = []
        if lines:
            self(*lines)

    def __call__(self, *lines: str) -> None:
        """Adds ``lines`` (none: one empty line)."""
        for line in lines or ("",):
            print(line, flush=True)
            self.lines.append(line)

    def save(self, path: str) -> None:
        write_text(path, "\n".join(self.lines) + "\n")


def _version(module: str) -> str:
    try:
        return getattr(importlib.import_module(module), "__version__", "?")
    except ImportError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        return ""


def machine_line(*modules: str) -> str:
    """The header line of every benchmark table: the machine, its JAX devices and load, and
    the versions of python, jax, flax and ``modules`` (import names)."""
    dev = jax.devices()[0]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cpu = " ".join(filter(None, (platform.machine(), _cpu_model())))
    versions = ", ".join(f"{m} {_version(m)}" for m in ("jax", "flax", *modules))
    return (
        f"machine: {cpu}, {os.cpu_count()} cores, {dev.platform} ({dev.device_kind}), "
        f"{len(jax.devices())} device(s); load avg {load:.2f}; python {platform.python_version()}, {versions}"
    )


def command_line() -> str:
    """The first line of every benchmark table: ``# python -m benchmarks.NAME`` and its flags."""
    name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    return f"# python -m benchmarks.{name} {' '.join(sys.argv[1:])}".rstrip()


def start_table(*lines: str, versions: tuple[str, ...] = ()) -> Lines:
    """A new table, printed as it grows: the command that makes it, the machine line (with the
    versions of the modules named in ``versions``), then ``lines``."""
    return Lines(command_line(), machine_line(*versions), *lines)


def time_call(fn, *args, warmup: int = 1, min_seconds: float = 2.0, min_calls: int = 3) -> float:
    """Median seconds per call of an already-compiled ``fn`` (results blocked on; a function
    that returns no JAX arrays, a PyTorch one on the CPU, is timed as it returns)."""
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    times = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def matmul_peak_gflops(n: int = 2048, dtype=jnp.float32) -> float:
    """Achieved GFLOP/s of one jitted n x n matmul: the practical dense peak here."""
    key = jax.random.key(0)
    a = jax.random.normal(key, (n, n), dtype)
    b = jax.random.normal(jax.random.fold_in(key, 1), (n, n), dtype)
    f = jax.jit(jnp.matmul)
    return 2 * n**3 / time_call(f, a, b) / 1e9


def format_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """``header`` and ``rows`` as right-aligned columns separated by `` | ``."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = " | ".join(f"{{:>{w}}}" for w in widths)
    return [fmt.format(*header), "-+-".join("-" * w for w in widths), *(fmt.format(*r) for r in rows)]
