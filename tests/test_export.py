"""export.py: round trips, provenance, and old exports merged over today's defaults."""

import json
import shutil

import jax
import numpy as np

from dheads_jax import export
from dheads_jax.sampling import SamplingOptions
from tests import helpers


def test_export_round_trip_keeps_weights_and_records_provenance(tiny_export):
    config, params, meta = export.load_export(tiny_export)
    assert meta["weights"] == "raw" and meta["provenance"]["step"] == 0
    assert meta["input_channels"] == 12 and meta["audio_encoder"] == dict(
        name="mel", dim=8, params=dict(num_mels=8, subframes=1, fmin=0.0, fmax=8000.0)
    )
    assert config.sampling.steps == 2
    ref = helpers.random_params(helpers.tiny_config())
    for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_old_export_loads_with_todays_defaults(tmp_path):
    config, _, meta = export.load_export(helpers.OLD_EXPORT)
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
    shutil.copytree(helpers.OLD_EXPORT, older)
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
    assert options.identity_mask == () and not options.identity_relative
    assert (
        options.guidance_interval == () and not options.guidance_grey
    )  # fields every committed export predates
