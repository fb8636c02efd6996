"""benchmarks/accelerator.py on configs/test.py: it runs on a CPU and counts FLOPs as XLA does."""

import os
import subprocess
import sys

import jax
import pytest

from benchmarks import accelerator
from configs import test as test_config
from dheads_jax import describe
from dheads_jax.models import factory
from tests import helpers


def test_flops_are_xlas_cost_analysis_of_the_same_function():
    config = test_config.get_config()
    model = factory.build_unet(config)
    params = factory.param_shapes(config)
    lowered = jax.jit(lambda p, x: model.apply({"params": p}, **x)).lower(
        params, factory.input_specs(config, 1)
    )
    # The benchmark's count (compiled) and --describe's (lowered) of the same forward agree.
    assert accelerator.compiled_flops(lowered) == pytest.approx(describe.forward_flops(config), rel=0.02)
    assert 1e8 < describe.forward_flops(config) < 1e9  # 0.2 GFLOP for the 32 px test model


@pytest.mark.slow
def test_the_benchmark_prints_and_writes_its_table(tmp_path):
    out = tmp_path / "table.txt"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.accelerator",
            "--config=configs/test.py",
            "--train_batches=1",
            "--sample_batches=1",
            "--video_frames=6",
            "--notorch",
            f"--output={out}",
        ],
        cwd=helpers.ROOT,
        env=dict(os.environ, XLA_FLAGS=helpers.xla_flags(None), JAX_PLATFORMS="cpu"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = out.read_text()
    kinds = [line.split("|")[0].strip() for line in table.splitlines() if "|" in line]
    assert kinds == ["kind", "peak", "train", "train", "sample", "sample", "video", "video"]
    assert "MFU (% of peak)" in table and "compile s" in table  # the header names the columns
    assert "0 new compilation(s)" in table and "ms/step" in table and "% |" in table


def test_it_imports_on_a_bare_accelerator_image():
    """No TensorFlow, TFDS, PyAV, dlib, librosa, OpenCV, Pillow, matplotlib or torch at import."""
    blocked = "tensorflow tensorflow_datasets av dlib librosa cv2 face_recognition_models soundfile torch PIL matplotlib"
    code = f"""
import importlib.abc, sys
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {blocked.split()!r}:
            raise ImportError("blocked " + name)
sys.meta_path.insert(0, Blocker())
import benchmarks.accelerator
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=helpers.ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
