"""Test set-up: 8 fake CPU devices (set before jax is imported anywhere) and the shared fixtures."""

import os
import shutil
import sys
import time
import uuid

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Identical computations compiled by several tests (or by the processes of a
# multi-process test) are compiled once. The key includes the XLA flags and JAX's options.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(ROOT, ".pytest_cache", "jax_compilation_cache")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
# Compiling, not running, is most of a test's time on a CPU: XLA's optimisation passes off
# (as the flax examples' tests do) cut it by about a quarter. Values move by rounding only,
# which the golden tolerances (tests/helpers.py) cover; JAX_DISABLE_MOST_OPTIMIZATIONS=0
# runs the suite with the optimised programs the commands use.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")


def _run_cache_dir() -> str:
    """A cache folder for this test run, shared by its xdist workers and their subprocesses.

    Prepared datasets are made once per run (not reused from an earlier run, so a test of the
    builder always sees what today's code builds); folders of runs older than a day go.
    """
    root = os.path.join(ROOT, ".pytest_cache", "dheads_cache")
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex
    if os.path.isdir(root):
        for name in os.listdir(root):
            path = os.path.join(root, name)
            if name.startswith("run-") and time.time() - os.path.getmtime(path) > 86400:
                shutil.rmtree(path, ignore_errors=True)
    return os.path.join(root, f"run-{run}")


os.environ.setdefault("DHEADS_CACHE", _run_cache_dir())

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tests import helpers  # noqa: E402


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """A 32 px export with random weights that samples 2 DDPM steps a frame."""
    return helpers.write_tiny_export(str(tmp_path_factory.mktemp("export") / "tiny"))


@pytest.fixture(scope="session")
def grid_dataset():
    """The 11 bundled GRID clips prepared at 128 px (mel 8 x 1), all in split "train".

    Built once per run under the shared cache lock, so the xdist workers share one copy.
    """
    from dheads_jax.data import audio, builder, cache, process, sources

    out = os.path.join(cache.cache_root(), f"grid_{helpers.GRID_SIZE}px_tests")
    with helpers.cache_lock():
        if not os.path.exists(os.path.join(out, builder.REPORT_NAME)):
            settings = process.PrepareSettings(
                image_size=helpers.GRID_SIZE, mel=audio.MelParams(num_mels=8, subframes=1)
            )
            builder.prepare_dataset(
                sources.ClipSpec(helpers.GRID_DIR),
                out,
                settings=settings,
                engine=builder.Engine(num_workers=2),
            )
    return out


@pytest.fixture(scope="session")
def inputs(tmp_path_factory):
    """Identity and speech files of every kind the commands meet, good and bad."""
    import librosa
    import soundfile
    from PIL import Image

    from dheads_jax import media

    d = tmp_path_factory.mktemp("inputs")
    face = helpers.first_frame(os.path.join(helpers.GRID_DIR, "bbaf2n.mpg"))
    rgba = np.concatenate([face, np.full(face.shape[:2] + (1,), 255, np.uint8)], -1)
    Image.fromarray(rgba).save(d / "face.png")  # with an alpha channel
    Image.fromarray(np.full((200, 200, 3), 90, np.uint8)).save(d / "blank.jpg")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    (d / "corrupt.wav").write_bytes(b"RIFF" + bytes(300))
    waveform, _ = media.read_audio(os.path.join(helpers.GRID_DIR, "swwp2s.mpg"))
    stereo = np.stack([waveform[:16000], waveform[:16000] * 0.5], -1)
    soundfile.write(d / "speech.wav", librosa.resample(stereo.T, orig_sr=16000, target_sr=44100).T, 44100)
    soundfile.write(d / "short.wav", np.zeros(160, np.float32), 16000)
    soundfile.write(d / "silence.flac", np.zeros(8000, np.float32), 16000)
    return d
