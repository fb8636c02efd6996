"""benchmarks/accelerator.py on configs/test.py: its row grammar, its FLOP count, a CPU run
that writes each row as it finishes (a failed row included), and its imports on a bare image."""

import json
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


def test_model_flops_are_xlas_count_of_the_lowered_forward():
    config = test_config.get_config()
    model = factory.build_unet(config)
    lowered = jax.jit(lambda p, x: model.apply({"params": p}, **x)).lower(
        factory.param_shapes(config), factory.input_specs(config, 1)
    )
    # The lowered count (model FLOPs) and the compiled one (after XLA's rewrites) agree here.
    assert describe.xla_flops(lowered.compile()) == pytest.approx(describe.forward_flops(config), rel=0.02)
    assert 1e8 < describe.forward_flops(config) < 1e9  # 0.2 GFLOP for the 32 px test model


@pytest.mark.parametrize(
    "spec, want",
    [
        ("peak", accelerator.RowSpec("peak")),
        ("train:10", accelerator.RowSpec("train", 10)),
        (
            "train:32r:cudnn:dots_saveable",
            accelerator.RowSpec("train", 32, remat=True, attention="cudnn", policy="dots_saveable"),
        ),
        ("sample:32g", accelerator.RowSpec("sample", 32, guidance=True)),
        ("sample:8:dot_product", accelerator.RowSpec("sample", 8, attention="dot_product")),
        ("video:100", accelerator.RowSpec("video", 100, steps=10)),
        ("video:50:4", accelerator.RowSpec("video", 50, steps=4)),
        ("torch:10c", accelerator.RowSpec("torch", 10, compiled=True)),
    ],
)
def test_row_specs(spec, want):
    assert accelerator.parse_row(spec) == want


@pytest.mark.parametrize(
    "spec", ["train", "train:x", "train:0", "trian:10", "sample:8:flash", "torch:2:cudnn", "peak:1"]
)
def test_bad_row_specs_name_the_entry(spec):
    with pytest.raises(ValueError, match=f"--rows entry '{spec}'"):
        accelerator.parse_row(spec)


@pytest.mark.slow
def test_the_benchmark_writes_each_row_as_it_finishes_and_reports_failures(tmp_path):
    out, jsonl = tmp_path / "table.txt", tmp_path / "rows.jsonl"
    rows = "peak,train:1,sample:1g,sample:1:cudnn,video:6"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.accelerator",
            "--config=configs/test.py",
            f"--rows={rows}",
            "--repeats=2",
            f"--output={out}",
            f"--jsonl={jsonl}",
        ],
        cwd=helpers.ROOT,
        env=dict(os.environ, XLA_FLAGS=helpers.xla_flags(None), JAX_PLATFORMS="cpu"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = out.read_text()
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("kind "))
    for name in (
        "compile s",
        "ms/step",
        "model TFLOP/s",
        "MFU % of peak row",
        "MFU % of datasheet",
        "XLA memory GiB",
    ):
        assert name in lines[header]
    kinds = [line.split("|")[0].strip() for line in lines[header + 2 :] if "|" in line]
    assert kinds == ["peak", "train", "sample", "sample", "video"]
    assert "jax 0.10.2" in table and "XLA_PYTHON_CLIENT_PREALLOCATE='false'" in table and "wall time" in table
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["kind"] for r in records] == kinds
    assert records[3]["notes"].startswith("failed: ") and "cuDNN" in records[3]["notes"]  # no GPU here
    train, guided, video = records[1], records[2], records[4]
    assert float(train["ms"]) > 0 and float(train["compile_s"]) > 0 and float(train["mfu_measured"]) > 0
    assert len(guided["video_s"].split(" / ")) == 3 and float(guided["xla_gib"]) > 0
    assert "0 new compilation(s)" in video["notes"]


def test_it_imports_on_a_bare_accelerator_image():
    """No TensorFlow, TFDS, PyAV, dlib, librosa, OpenCV, Pillow, matplotlib or torch at import."""
    blocked = "tensorflow tensorflow_datasets av dlib librosa cv2 face_recognition_models soundfile torch PIL matplotlib"
    code = f"import sys\nfor name in {blocked.split()!r}:\n    sys.modules[name] = None\nimport benchmarks.accelerator\n"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=helpers.ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
