"""The bundled default model: inside the package, within size, with its provenance; used by default."""

import json
import os

import av
import pytest
import soundfile

from dheads_jax import bundled, export, media
from dheads_jax.sampling import SamplingOptions
from tests import helpers

PHOTO = os.path.join(helpers.ROOT, "data", "samples", "photos", "astronaut.jpg")
SPEECH = os.path.join(helpers.ROOT, "data", "samples", "grid", "swwp2s.mpg")


def test_the_bundled_model_is_a_small_guided_export_with_its_provenance():
    path = bundled.default_export()
    assert path == os.path.join(helpers.ROOT, "dheads_jax", "bundled", "default")
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, names in os.walk(path) for f in names)
    assert size <= 20 << 20
    meta = export.read_meta(path)
    record = meta["provenance"]["bundled"]
    assert record["command"] == "bash scripts/bundled_model.sh"
    assert record["training_config"] == "configs/bundled.py" and isinstance(record["seed"], int)
    # The size checked at install, before the provenance was added to export.json.
    assert "CC BY 4.0" in record["data"]["licence"] and record["size_bytes"] <= size
    assert record["held_out_grid"]["summary"]["generated"]["psnr"] > 0
    assert any(line.startswith("generated: mean") for line in record["talking"])
    options = SamplingOptions.from_config(export.config_from_meta(meta))
    # Guided DDIM: two network passes a step, the guidance confined to the mouth's box.
    assert (options.sampler, options.steps) == ("ddim", record["sampling"]["steps"])
    assert options.audio_guidance == record["sampling"]["audio_guidance"] > 1
    top, bottom, left, right = options.guidance_region
    assert 0.5 < top < bottom <= 1 and 0 < left < right < 1
    assert record["sampling"]["network_passes_per_frame"] == 2 * options.steps


def test_a_missing_bundled_model_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(bundled, "DEFAULT_EXPORT", str(tmp_path / "default"))
    with pytest.raises(bundled.NoBundledModel) as err:
        bundled.default_export()
    assert "\n" not in str(err.value) and "bash scripts/bundled_model.sh" in str(err.value)


@pytest.mark.slow
def test_run_sample_without_an_export_uses_the_bundled_model(tmp_path):
    out = tmp_path / "talking.mp4"
    speech = tmp_path / "speech.wav"  # 1.03 s of GRID speech: 25 frames
    waveform, _ = media.read_audio(SPEECH)
    soundfile.write(str(speech), waveform[media.SAMPLE_RATE : 2 * media.SAMPLE_RATE + 500], media.SAMPLE_RATE)
    proc = helpers.run_command(
        "run_sample.py", f"--id_image={PHOTO}", f"--audio={speech}", f"--output={out}", "--steps=2"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if "bundled default model" in line]
    assert lines == [
        f"run_sample.py: no --export given; using the bundled default model ({bundled.DEFAULT_EXPORT})"
    ]
    with av.open(str(out)) as container:
        assert container.streams.audio, "no audio track"
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == (media.SAMPLE_RATE + 500) // media.SAMPLES_PER_FRAME == 25
    assert json.load(open(os.path.join(bundled.DEFAULT_EXPORT, "export.json")))["image_size"] == 64
