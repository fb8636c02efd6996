"""The Apache Beam engine of the dataset build against the local one, on GRID and bad inputs."""

import dataclasses
import json
import os

import numpy as np
import pytest

pytest.importorskip("apache_beam", reason="the beam extra is not installed (pip install -e '.[beam]')")

from dheads_jax.data import beam_build, builder, process, reader, sources
from tests import helpers
from tests.bad_inputs import EXPECTED_REASONS, write_bad_inputs

# Sparse detection (k = 10) halves the cost of the 21 files; both engines use the same settings.
SETTINGS = process.PrepareSettings(
    image_size=32, mel=process.audio.MelParams(num_mels=8, subframes=1), detect_every=10
)
BEAM_OPTIONS = "runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"
CLIP_FIELDS = ("frames", "landmarks", "mouth_boxes", "audio", "waveform")


@pytest.fixture(scope="module")
def both_builds(tmp_path_factory):
    """The 11 GRID clips plus every bad input, built by the local pool and by Beam."""
    root = tmp_path_factory.mktemp("beam")
    videos, audio_dir = root / "videos", root / "audio"
    write_bad_inputs(videos, audio_dir)
    (videos / "grid").mkdir()
    for name in sorted(os.listdir(helpers.GRID_DIR)):
        if name.endswith(".mpg"):
            os.symlink(os.path.join(helpers.GRID_DIR, name), videos / "grid" / name)
    clips = sources.ClipSpec(str(videos), audio_dir=str(audio_dir))
    local = builder.prepare_dataset(
        clips, str(root / "local"), settings=SETTINGS, engine=builder.Engine(num_workers=2)
    )
    beam = builder.prepare_dataset(
        clips, str(root / "beam"), settings=SETTINGS, engine=builder.Engine(beam_options=BEAM_OPTIONS)
    )
    return local, beam


@pytest.mark.slow
def test_beam_build_equals_the_local_build(both_builds):
    local, beam = both_builds
    assert local.written == beam.written == {"train": 13}
    assert {s.clip: s.reason for s in beam.skipped} == EXPECTED_REASONS
    assert beam.skipped == local.skipped
    local_clips = reader.load_clips(local.dataset_dir)
    beam_clips = reader.load_clips(beam.dataset_dir)
    assert [c.clip_id for c in beam_clips] == [c.clip_id for c in local_clips]
    assert len(beam_clips) == 13 and sum(c.clip_id.startswith("grid/") for c in beam_clips) == 11
    for a, b in zip(local_clips, beam_clips, strict=True):
        assert (a.speaker_id, a.clip_index) == (b.speaker_id, b.clip_index)
        for field in CLIP_FIELDS:
            np.testing.assert_array_equal(
                getattr(a, field), getattr(b, field), err_msg=f"{a.clip_id} {field}"
            )
    # The same report, but for where it was written.
    reports = [json.load(open(r.report_path)) for r in (local, beam)]
    for report in reports:
        report.pop("dataset_dir")
    assert reports[0] == reports[1]
    assert reports[1]["skipped_per_reason"] == {"no_face": 2, "corrupt": 2} | {
        r: 1 for r in ("length_mismatch", "no_audio", "not_video", "too_short")
    }
    # Nothing of the build is left beside the dataset.
    assert sorted(os.listdir(os.path.dirname(os.path.dirname(beam.dataset_dir)))) == [
        "prepare_report.json",
        "talking_faces",
    ]


@pytest.mark.slow
def test_beam_counters_count_every_processed_clip(both_builds):
    _, beam = both_builds
    # not_video files never reach the pipeline: the folder listing rejects them.
    processed = {r: n for r, n in builder.skip_counts(beam.skipped).items() if r != "not_video"}
    assert beam.counters == {"written": 13} | {f"skipped_{r}": n for r, n in processed.items()}


def test_pipeline_options_in_tfds_syntax():
    options = beam_build.pipeline_options("runner=DirectRunner, direct_num_workers=2")
    assert options.get_all_options()["direct_num_workers"] == 2
    assert options.get_all_options()["runner"] == "DirectRunner"
    for bad in ("", " , ", "=2", "runner DirectRunner"):
        with pytest.raises(ValueError, match="Beam pipeline option"):
            beam_build.pipeline_options(bad)


def test_a_split_whose_clips_are_all_bad_is_left_out(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    os.symlink(os.path.join(helpers.GRID_DIR, "bbaf2n.mpg"), videos / "good.mpg")
    (videos / "broken.mp4").write_bytes(b"not a video at all")
    (tmp_path / "train.txt").write_text("good.mpg\n")
    (tmp_path / "val.txt").write_text("broken.mp4\n")
    lists = [f"train={tmp_path / 'train.txt'}", f"val={tmp_path / 'val.txt'}"]
    result = builder.prepare_dataset(
        sources.ClipSpec(str(videos), file_lists=lists),
        str(tmp_path / "out"),
        settings=SETTINGS,
        engine=builder.Engine(beam_options="runner=DirectRunner"),
    )
    assert result.written == {"train": 1}
    assert [dataclasses.astuple(s)[:3] for s in result.skipped] == [("broken.mp4", "val", "corrupt")]
    assert result.counters == {"written": 1, "skipped_corrupt": 1}


@pytest.mark.slow
def test_prepare_command_refuses_bad_beam_options_in_one_line(tmp_path):
    run = helpers.run_command(
        "data/prepare.py",
        f"--videos_dir={helpers.GRID_DIR}",
        f"--output_dir={tmp_path / 'out'}",
        "--beam_pipeline_options=runner DirectRunner",
    )
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        "prepare: bad Beam pipeline option 'runner DirectRunner': expected KEY=VALUE, e.g. runner=DirectRunner"
    )
    assert "Traceback" not in run.stderr
    assert not os.path.exists(tmp_path / "out" / "talking_faces")
