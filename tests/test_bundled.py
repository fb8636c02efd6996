"""The bundled default model: inside the package, within size, with its provenance.

That run_sample.py uses it when no --export is given is checked with the command's printed
lines in tests/test_commands_output.py.
"""

import os

import pytest

from dheads_jax import bundled, export
from dheads_jax.sampling import SamplingOptions
from tests import helpers


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
    assert record["sampling"]["network_passes_per_frame"] == options.passes_per_frame()


def test_a_missing_bundled_model_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(bundled, "DEFAULT_EXPORT", str(tmp_path / "default"))
    with pytest.raises(bundled.NoBundledModel) as err:
        bundled.default_export()
    assert "\n" not in str(err.value) and "bash scripts/bundled_model.sh" in str(err.value)
