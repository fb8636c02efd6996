"""Shared test utilities: paths, tiny configs and exports, random batches and parameters,
real GRID clips, golden outputs, and the launchers of command-line and multi-process runs.

Imports beyond jax, numpy and the model stay inside the functions: benchmarks/accelerator.py
imports this module on accelerator images that have no TensorFlow, PyAV or orbax."""

import contextlib
import fcntl
import functools
import os
import shutil
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from configs import test as test_config
from dheads_jax.distributed import free_port
from dheads_jax.models import factory, synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRID_DIR = os.path.join(ROOT, "data", "samples", "grid")
PHOTOS_DIR = os.path.join(ROOT, "data", "samples", "photos")
ASSETS = os.path.join(ROOT, "tests", "assets")
GRID_SIZE = 128  # the resolution of the grid_dataset fixture (conftest.py)
# An export written by the first sampler (test config, 4 DDIM steps, audio guidance 5, v
# prediction, shared noise; the flat audio-encoder form): old exports must still load and sample.
OLD_EXPORT = os.path.join(ASSETS, "export_v1")


def tiny_config(**data_overrides):
    config = test_config.get_config()
    for k, v in data_overrides.items():
        config.data[k] = v
    return config


random_batch = synthetic.random_batch
random_params = synthetic.random_params


_INIT_CACHE = {}


def init_params(model, config, seed=0):
    """Initial parameters, cached per (model, input shapes, seed).

    XLA on the CPU takes 10-20 s to compile the ~100 threefry draws of an init, so
    tests share one initialisation per model instead of paying that each time.
    """
    specs = factory.input_specs(config, 1)
    cache_key = (model, tuple((k, v.shape) for k, v in specs.items()), seed)
    if cache_key not in _INIT_CACHE:
        init = jax.jit(lambda key: model.init(key, **factory.dummy_inputs(config, 1))["params"])
        _INIT_CACHE[cache_key] = init(jax.random.key(seed))
    return _INIT_CACHE[cache_key]


def perturbed(params, seed=1, scale=0.05):
    """Adds noise to every tensor so that zero-initialised layers stop hiding the rest."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(
        treedef,
        [p + scale * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys, strict=True)],
    )


def apply(model, params, batch, t):
    """The model's output on a batch (its target used as x_t) at timesteps t. Jitted."""
    return _jitted_apply(model)(params, batch, jnp.asarray(t))


_APPLY_CACHE = {}


def _jitted_apply(model):
    if model not in _APPLY_CACHE:

        def fn(params, batch, t):
            return model.apply(
                {"params": params}, batch["target"], t, batch["identity"], batch["motion"], batch["audio"]
            )

        _APPLY_CACHE[model] = jax.jit(fn)
    return _APPLY_CACHE[model]


def prepared_samples(config) -> str:
    """The bundled GRID clips prepared for ``config`` (once, under a lock shared by workers)."""
    from dheads_jax.data import cache

    with cache_lock():
        return cache.ensure_dataset(config)


def first_frame(path: str) -> np.ndarray:
    """The first frame of a video as uint8 RGB [H, W, 3]."""
    import av

    with av.open(path) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24")


@contextlib.contextmanager
def cache_lock():
    """An exclusive lock on the session's cache folder, shared by the xdist workers."""
    from dheads_jax.data import cache

    os.makedirs(cache.cache_root(), exist_ok=True)
    with open(os.path.join(cache.cache_root(), ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def write_tiny_export(path: str, steps: int = 2) -> str:
    """A 32 px export of the test config with random (non-zero) weights that samples ``steps`` steps a frame."""
    from dheads_jax import export

    config = tiny_config()
    config.sampling.steps = steps
    return export.write_export(path, random_params(config), config, weights="raw", provenance=dict(step=0))


@functools.cache
def grid_clip(name: str, size: int = 64):
    """(frames uint8 [75, size, size, 3], waveform [75 * 640]) of a GRID clip, face-cropped."""
    from dheads_jax import imaging, media
    from dheads_jax.data import faces

    path = os.path.join(GRID_DIR, f"{name}.mpg")
    frames, video_start = media.read_video(path)
    waveform, audio_start = media.read_audio(path)
    waveform = media.fit_waveform(media.shift_waveform(waveform, audio_start - video_start), len(frames))
    lm = faces.default_detector()(frames[0])
    (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 0.75 * max(x1 - x0, y1 - y0)
    top, left = int(cy - half), int(cx - half)
    side = int(2 * half)
    crops = np.stack([f[top : top + side, left : left + side] for f in frames])
    return imaging.resize(crops, size, "area"), waveform


def shifted(frames: np.ndarray, s: int) -> np.ndarray:
    """frames delayed by s frames (s > 0: out[k] = frames[k - s]), edges repeated."""
    if s >= 0:
        return np.concatenate([np.repeat(frames[:1], s, 0), frames[: len(frames) - s]])
    return np.concatenate([frames[-s:], np.repeat(frames[-1:], -s, 0)])


def noisy(frames: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(frames + rng.normal(0, sigma, frames.shape), 0, 255).astype(np.uint8)


def xla_flags(devices: int | None) -> str:
    """This session's XLA_FLAGS with ``devices`` fake host devices (None: the host's one),
    other flags (an instruction-set cap such as --xla_cpu_max_isa=AVX2) kept."""
    kept = [f for f in os.environ.get("XLA_FLAGS", "").split() if "host_platform_device_count" not in f]
    if devices is not None:
        kept.append(f"--xla_force_host_platform_device_count={devices}")
    return " ".join(kept)


def command_env(devices: int | None = None, **extra) -> dict:
    """The environment of a command run by a test: CPU only, ``devices`` fake host devices
    (None: as this session), plus ``extra`` variables."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", **extra)
    if devices is not None:
        env["XLA_FLAGS"] = xla_flags(devices)
    return env


def run_command(script: str, *args, env: dict | None = None, cwd: str = ROOT, timeout: int = 600):
    """Runs ``python script args`` (script relative to the repository) to completion."""
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, script), *map(str, args)],
        cwd=cwd,
        env=env if env is not None else command_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_two_processes(script: str, *args, env: dict, cwd: str = ROOT, output=None):
    """Runs ``script`` as processes 0 and 1 of one jax.distributed job on a localhost coordinator.

    The port from ``free_port`` can be taken before the coordinator binds it, and a loaded
    machine can miss coordination heartbeats, so a failed pair is run once more (with a
    warning carrying the first failure's stderr). ``output``: a folder the command writes,
    removed before the second try so that it starts from nothing.

    Returns:
      (return codes, stdouts, stderrs) of the last try.
    """
    for attempt in range(2):
        port = free_port()
        if attempt and output is not None:
            shutil.rmtree(output, ignore_errors=True)
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    os.path.join(ROOT, script),
                    *map(str, args),
                    f"--coordinator_address=127.0.0.1:{port}",
                    "--num_processes=2",
                    f"--process_id={i}",
                ],
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        outs = [p.communicate(timeout=600) for p in procs]
        codes = [p.returncode for p in procs]
        if codes == [0, 0] or attempt:
            return codes, [o for o, _ in outs], [e for _, e in outs]
        warnings.warn(
            f"two-process run of {script} failed ({codes}), retrying; stderr tails: "
            f"{[e[-1500:] for _, e in outs]}",
            stacklevel=2,
        )


# Golden outputs (tests/assets/golden) recorded with the first sampler on one machine. XLA:CPU
# rounds differently with the instruction set it targets, the number of host devices and its
# optimisation level; the spread measured over --xla_cpu_max_isa=SSE4_2 / AVX2 / the default
# (AVX-512), 1 against 8 devices and JAX_DISABLE_MOST_OPTIMIZATIONS on and off was at most
#   official sampler (DDPM, 6 steps, fp32 frames): 5.8e-6 max, 1.5e-7 mean absolute difference;
#   demo sampler (DDIM 4, v, guidance 5, shared noise, stabilize): 3.2e-3 max, 1.4e-4 mean
#     (guidance multiplies the rounding of the two passes' difference by 5);
#   run_sample.py on export_v1 (74 uint8 frames): 1 grey level max, 2.6 % of values off by 1.
# The tolerances below are about 10 times that spread. For scale: moving the demo's guidance
# from 5 to 4.99 changes its frames by 4.0e-3 max, 3.9e-4 mean, so a real change of the
# sampler (a key, a timestep, a formula) is orders of magnitude beyond them.
GOLDEN_TOLERANCE = {
    "official_frames": dict(max_abs=1e-4, mean_abs=1e-5),
    "demo_frames": dict(max_abs=3e-2, mean_abs=1.5e-3),
    "run_sample_export_v1": dict(max_abs=2, mean_abs=0.25),
}


def golden(name: str) -> np.ndarray:
    """A golden output of tests/assets/golden (a .npy array, or the ``frames`` of a .npz)."""
    path = os.path.join(ASSETS, "golden", name)
    if os.path.exists(path + ".npy"):
        return np.load(path + ".npy")
    with np.load(path + ".npz") as z:
        return z["frames"]


def assert_matches_golden(name: str, x) -> None:
    """``x`` equals the golden output ``name`` within its stated tolerance (GOLDEN_TOLERANCE)."""
    ref = golden(name)
    x = np.asarray(x)
    assert x.shape == ref.shape and x.dtype == ref.dtype, (x.shape, x.dtype, ref.shape, ref.dtype)
    diff = np.abs(x.astype(np.float64) - ref.astype(np.float64))
    tol = GOLDEN_TOLERANCE[name]
    assert diff.max() <= tol["max_abs"] and diff.mean() <= tol["mean_abs"], (
        f"{name}: max abs difference {diff.max():.3g} (tolerance {tol['max_abs']}), "
        f"mean {diff.mean():.3g} (tolerance {tol['mean_abs']})"
    )


def train_setup(config, mesh):
    """(state, jitted train step, state shardings) of the test config on ``mesh``."""
    from dheads_jax import parallel
    from dheads_jax.diffusion import build_schedule
    from dheads_jax.train import optimizer
    from dheads_jax.train import state as state_lib
    from dheads_jax.train.step import make_train_step

    model = factory.build_unet(config)
    schedule = build_schedule("cosine", 1000)
    tx = optimizer.make_optimizer(config.optim, config.train.num_steps)
    lr_fn = optimizer.lr_schedule(config.optim, config.train.num_steps)
    params = init_params(model, config)
    st = state_lib.init_state(params, tx, ema=config.optim.ema_decay > 0)
    shardings = parallel.tree_shardings(mesh, st, min_size=256)
    st = jax.device_put(st, shardings)
    step = jax.jit(
        make_train_step(model, schedule, tx, lr_fn, config),
        in_shardings=(shardings, parallel.batch_sharding(mesh)),
        out_shardings=(shardings, parallel.replicated(mesh)),
    )
    return st, step, shardings


def ema_config():
    """The test config with a fast lr and an EMA of decay 0.5 (so one step moves it visibly)."""
    config = tiny_config()
    config.optim.lr = 1e-3
    config.optim.ema_decay = 0.5
    return config
