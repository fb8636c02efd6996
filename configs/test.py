"""A tiny CPU config for unit tests: 32 px, 16 base channels, one res block per level.

  python run_train.py --config=configs/test.py --describe
  python run_train.py --config=configs/test.py --workdir=/tmp/dheads_test

Trains on the bundled GRID clips (prepared at 32 px into the cache on first use).
Cost: 0.25 M parameters; 20 steps take seconds after about a minute of compiling.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.name = "test"
    config.data.image_size = 32
    config.data.samples_dir = "data/samples/grid"
    config.data.audio_encoder = "mel"
    config.data.mel_bins = 8
    config.data.mel_subframes = 1
    config.data.audio_dim = 8
    config.model.model_channels = 16
    config.model.channel_mult = (1, 2)
    config.model.num_res_blocks = 1
    config.model.attention_resolutions = (16,)
    config.model.head_channels = 8
    config.model.num_groups = 8
    config.model.dropout = 0.0
    config.diffusion.num_timesteps = 1000
    config.train.batch_size = 8
    config.train.num_steps = 20
    config.train.log_every = 5
    config.train.checkpoint_every = 10
    config.train.milestone_every = 0
    config.train.sample_every = 0
    config.train.sample_frames = 3
    config.train.sample_steps = 5
    config.sampling.steps = 10
    return config
