"""Sampling a set on several processes: same videos as one process, each once, one report, resume."""

import json
import os
import subprocess
import sys
import time
import warnings

import av
import numpy as np
import pytest

from dheads_jax import export, generate
from dheads_jax.models import factory
from tests import helpers

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPLIT = "train[:5]"


@pytest.fixture(scope="module")
def dataset():
    return helpers.prepared_samples(helpers.tiny_config())


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    config = helpers.tiny_config()
    params = helpers.perturbed(helpers.init_params(factory.build_unet(config), config))
    path = str(tmp_path_factory.mktemp("export") / "tiny")
    return export.write_export(path, params, config, weights="raw", provenance=dict(step=0))


def command(tiny_export, dataset, out, *extra):
    return [
        sys.executable,
        os.path.join(ROOT, "run_sample.py"),
        f"--export={tiny_export}",
        f"--dataset={dataset}",
        f"--split={SPLIT}",
        f"--output_dir={out}",
        "--steps=2",
        *extra,
    ]


def env():
    e = dict(os.environ, JAX_PLATFORMS="cpu")
    e["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
    return e


def two_processes(tiny_export, dataset, out):
    port = helpers.free_port()
    procs = [
        subprocess.Popen(
            command(
                tiny_export,
                dataset,
                out,
                f"--coordinator_address=127.0.0.1:{port}",
                "--num_processes=2",
                f"--process_id={i}",
            ),
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    return [p.returncode for p in procs], [err for _, err in outs]


def frames(path):
    with av.open(path) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def written_by(stderr):
    """The outputs a process says it wrote."""
    names = []
    for line in stderr.splitlines():
        if "generate.py" in line and "] wrote " in line:
            names += [os.path.basename(p) for p in line.split("] wrote ", 1)[1].split(", ")]
    return names


def test_two_processes_make_the_same_videos_as_one_each_once(tiny_export, dataset, tmp_path):
    one = tmp_path / "one"
    proc = subprocess.run(command(tiny_export, dataset, one), env=env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report_one = json.loads((one / "sample_report.json").read_text())
    names = sorted(os.path.basename(r["output"]) for r in report_one)
    assert len(names) == 5 and all(r["status"] == "written" for r in report_one)

    two = tmp_path / "two"
    codes, errs = two_processes(tiny_export, dataset, two)
    if codes != [0, 0]:
        # The free port can be taken before the coordinator binds it: say so, try once more.
        warnings.warn(
            f"two-process run failed ({codes}), retrying: {[e[-1500:] for e in errs]}", stacklevel=2
        )
        two = tmp_path / "two_retry"
        codes, errs = two_processes(tiny_export, dataset, two)
    for code, err in zip(codes, errs, strict=True):
        assert code == 0, err[-3000:]
    mine = [written_by(e) for e in errs]
    assert sorted(mine[0] + mine[1]) == names and not set(mine[0]) & set(mine[1])
    assert abs(len(mine[0]) - len(mine[1])) <= 1  # equal lengths: balanced by count
    assert "process 1/2" in errs[0] and "process 2/2" in errs[1]
    report_two = json.loads((two / "sample_report.json").read_text())
    assert [(os.path.basename(r["output"]), r["status"]) for r in report_two] == [
        (n, "written") for n in names
    ]
    assert not [f for f in os.listdir(two) if ".tmp" in f]
    for n in names:
        np.testing.assert_array_equal(frames(str(one / n)), frames(str(two / n)), err_msg=n)


def test_an_interrupted_set_resumes_and_keeps_what_was_finished(tiny_export, dataset, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(command(tiny_export, dataset, out), env=env(), stderr=subprocess.PIPE, text=True)
    finished = []
    for line in proc.stderr:
        finished += written_by(line)
        if len(finished) >= 2:
            proc.kill()
            break
    proc.wait(timeout=60)
    assert proc.returncode != 0 and len(finished) >= 2
    kept = {n: os.path.getmtime(out / n) for n in finished}
    time.sleep(0.01)
    rerun = subprocess.run(command(tiny_export, dataset, out), env=env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    report = {
        os.path.basename(r["output"]): r["status"]
        for r in json.loads((out / "sample_report.json").read_text())
    }
    assert len(report) == 5
    assert all(report[n] == "exists, skipped" for n in finished)
    assert sum(s == "written" for s in report.values()) == 5 - len(finished)
    assert all(os.path.getmtime(out / n) == t for n, t in kept.items())
    assert not [f for f in os.listdir(out) if ".tmp" in f]
    assert all(len(frames(str(out / n))) == 75 for n in report)


def test_entries_are_balanced_by_frames_and_split_deterministically():
    entries = [generate.Entry(i, f"{i}.mp4", n) for i, n in enumerate([10, 75, 30, 30, 40, 5, 60])]
    shares = generate.assign(entries, 3)
    assert sorted(e.video_id for s in shares for e in s) == list(range(7))
    loads = [sum(e.length for e in s) for s in shares]
    assert max(loads) - min(loads) <= 10 and sum(loads) == 250
    assert shares == generate.assign(list(reversed(entries)), 3)
    assert generate.assign(entries, 1) == [sorted(entries, key=lambda e: (-e.length, e.video_id))]
