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
