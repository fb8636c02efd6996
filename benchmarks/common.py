"""Shared benchmark helpers: timing, the matmul peak, the machine line, paper-shaped configs."""

from __future__ import annotations

import os
import platform
import sys
import time

import jax
import jax.numpy as jnp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from configs import crema  # noqa: E402


def time_call(fn, *args, warmup: int = 1, min_seconds: float = 2.0, min_calls: int = 3) -> float:
    """Median seconds per call of an already-compiled ``fn`` (results blocked on)."""
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


def machine_line() -> str:
    """Machine, device and versions, for the header of every benchmark table."""
    import flax

    dev = jax.devices()[0]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"machine: {platform.machine()} {os.cpu_count()} cores, {dev.platform} ({dev.device_kind}), "
        f"{len(jax.devices())} device(s); load avg {load:.2f}; python {platform.python_version()}, "
        f"jax {jax.__version__}, flax {flax.__version__}"
    )


def paper_shaped_config(image_size: int = 64, channels: int = 64):
    """configs/crema.py with fewer channels and a smaller image, same architecture.

    Attention stays at the lowest level (the 32 px level of a 128 px model), so the
    block structure, heads of 64 channels and conditioning paths are unchanged.
    """
    config = crema.get_config()
    config.name = f"crema-shaped {image_size}px C={channels}"
    config.data.image_size = image_size
    config.model.model_channels = channels
    config.model.attention_resolutions = (image_size // 4,)
    return config


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = " | ".join(f"{{:>{w}}}" for w in widths)
    print(fmt.format(*header))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(fmt.format(*r))
