"""Golden frames: the same export, inputs and seed give bit-identical videos across refactors.

The hashes were recorded with the sampler as it stood before the inference half was
redesigned (a ``sample_video`` of 22 parameters); the redesign had to reproduce them to
the bit, for the official sampler and for the demo's (v prediction, DDIM, audio
guidance, shared noise, stabilize). ``tests/data/export_v1`` is an export written by that
code (the flat audio-encoder form, no mel band edges), so it also pins that old exports
still load and sample. These hold on one machine with the pinned CPU packages; another
XLA version or instruction set may round differently, and so does another number of host
devices (the in-process hashes are those of the test session's 8 fake CPU devices, the
command's those of one device).
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import test as test_config
from dheads_jax import export, generate, sampling
from dheads_jax.models.factory import build_unet
from dheads_jax.sampling import SamplingOptions, VideoBatch
from tests.helpers import random_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OLD_EXPORT = os.path.join(ROOT, "tests", "data", "export_v1")
GRID_CLIP = os.path.join(ROOT, "data", "samples", "grid", "bbaf2n.mpg")

OFFICIAL_SHA256 = "11b9678be9d02051ac6fd3602e04d12cafc4c88cc37cd7a87ae8a3e80c570438"
DEMO_SHA256 = "60a6434c8184224f655b39f7d6fb20b89ce45b2f0b42cba846dae2ab4d3b8b24"
CLI_SHA256 = "1955e0f9ad58c9855a7a3bf7447b938d1847460a3a89ea881cb53bc76a3d89e3"


def sha256(x) -> str:
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def network():
    config = test_config.get_config()
    rng = np.random.default_rng(11)
    identity = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    audio = rng.normal(size=(2, 5, 8)).astype(np.float32)
    videos = VideoBatch.create(identity, audio, lengths=[5, 3], video_ids=[0, 4])
    return config, sampling.UNetApply(build_unet(config)), random_params(config, seed=3), videos


def test_official_sampler_frames_are_unchanged(network):
    config, apply_fn, params, videos = network
    options = SamplingOptions.from_config(config, steps=6)
    assert (options.sampler, options.audio_guidance, options.shared_noise) == ("ddpm", 1.0, False)
    frames = sampling.sample_videos(apply_fn, params, options, videos, jax.random.key(7))
    assert frames.dtype == np.float32 and frames.shape == (2, 5, 32, 32, 3)
    assert sha256(frames) == OFFICIAL_SHA256


def test_demo_sampler_frames_are_unchanged(network):
    config, apply_fn, params, videos = network
    config = config.copy_and_resolve_references()
    config.diffusion.parametrization = "v"
    options = SamplingOptions.from_config(
        config,
        steps=4,
        sampler="ddim",
        audio_guidance=5.0,
        shared_noise=True,
        stabilize=True,
        stabilize_every=2,
    )
    frames = sampling.sample_videos(apply_fn, params, options, videos, jax.random.key(7))
    assert sha256(frames) == DEMO_SHA256


def test_an_old_export_loads_with_todays_defaults(tmp_path):
    config, _, meta = export.load_export(OLD_EXPORT)
    assert "params" not in meta["audio_encoder"]  # the flat form of the first exports
    spec = export.encoder_spec(meta)
    assert (spec.name, spec.dim, spec.mel.num_mels, spec.mel.subframes) == ("mel", 8, 8, 1)
    assert (spec.mel.fmin, spec.mel.fmax) == (0.0, 8000.0)
    assert config.data.mel_fmax == 8000.0  # a field the export predates
    options = SamplingOptions.from_config(config)
    assert (options.sampler, options.steps, options.audio_guidance, options.shared_noise) == (
        "ddim",
        4,
        5.0,
        True,
    )
    assert len(options.null_audio) == 8
    # An export from before the ours options: every missing field is the official default.
    older = tmp_path / "older"
    shutil.copytree(OLD_EXPORT, older)
    meta_path = older / export.META_NAME
    stored = json.loads(meta_path.read_text())
    for block, key in [
        ("sampling", "audio_guidance"),
        ("sampling", "shared_noise"),
        ("diffusion", "parametrization"),
        ("diffusion", "mse_target"),
        ("model", "motion_mask"),
    ]:
        del stored["config"][block][key]
    meta_path.write_text(json.dumps(stored))
    config, _, _ = export.load_export(str(older))
    options = SamplingOptions.from_config(config)
    assert (options.parametrization, options.audio_guidance, options.null_audio) == ("eps", 1.0, None)
    assert not options.shared_noise and tuple(config.model.motion_mask) == ()


def test_the_sampler_streams_frames_with_their_active_flags():
    s = generate.Sampler.from_export(OLD_EXPORT, dict(steps=2, audio_guidance=1.0))
    rng = np.random.default_rng(0)
    jobs = [
        generate.Job(rng.uniform(-1, 1, (32, 32, 3)).astype(np.float32), rng.normal(size=(n, 8)), None, "", v)
        for v, n in enumerate([3, 1])
    ]
    seen = [(k, frames.dtype, frames.shape, active.tolist()) for k, frames, active in s.frames(jobs)]
    assert seen == [
        (0, np.uint8, (2, 32, 32, 3), [True, True]),
        (1, np.uint8, (2, 32, 32, 3), [True, False]),
        (2, np.uint8, (2, 32, 32, 3), [True, False]),
    ]


@pytest.mark.slow
def test_run_sample_on_an_old_export_is_unchanged(tmp_path):
    out = tmp_path / "frames.npy"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = ""  # one device, as the hash was recorded
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "run_sample.py"),
            f"--export={OLD_EXPORT}",
            f"--id_image={GRID_CLIP}",
            f"--audio={GRID_CLIP}",
            f"--output={out}",
            "--seed=3",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    frames = np.load(out)
    assert frames.shape == (74, 32, 32, 3)
    assert sha256(frames) == CLI_SHA256
