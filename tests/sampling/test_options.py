"""SamplingOptions read from a config."""

import pytest

from configs import test as test_config
from dheads_jax.sampling import SamplingOptions

NUM_STEPS = 6


def test_sampling_options_read_the_ours_options():
    config = test_config.get_config()
    assert SamplingOptions.from_config(config).shared_noise is False
    assert SamplingOptions.from_config(config).audio_guidance == 1.0
    assert SamplingOptions.from_config(config).null_audio is None
    config.sampling.shared_noise = True
    config.sampling.audio_guidance = 4.0
    opts = SamplingOptions.from_config(config)
    assert opts.shared_noise is True and opts.audio_guidance == 4.0
    # Guidance brings the silence embedding of the config's encoder along.
    assert len(opts.null_audio) == config.data.audio_dim
    # Overrides win over the config; None keeps the config's value.
    opts = SamplingOptions.from_config(config, steps=3, sampler="ddim", audio_guidance=None, stabilize=True)
    assert (opts.steps, opts.sampler, opts.audio_guidance, opts.stabilize_every) == (3, "ddim", 4.0, 15)
    assert hash(opts) == hash(SamplingOptions.from_config(config, steps=3, sampler="ddim", stabilize=True))
    with pytest.raises(ValueError, match="unknown sampling options"):
        SamplingOptions.from_config(config, stepz=3)
    with pytest.raises(ValueError, match="unknown sampler"):
        SamplingOptions.from_config(config, sampler="euler")


def test_other_steps_on_a_student_warn_that_its_timesteps_are_dropped(caplog):
    config = test_config.get_config()
    config.sampling.steps, config.sampling.timesteps = 2, (499, 999)  # a distilled student's own grid
    assert SamplingOptions.from_config(config).timesteps == (499, 999)
    assert SamplingOptions.from_config(config, steps=2).timesteps == (499, 999)
    assert not caplog.records
    with caplog.at_level("WARNING"):
        opts = SamplingOptions.from_config(config, steps=4)
    assert opts.timesteps == () and opts.steps == 4
    assert "instead of the 2 this export was trained on" in caplog.text
