"""A tiny CPU config for unit tests: 32 px, 16 base channels, one res block per level.

  python run_train.py --config=configs/test.py --describe

Cost: about 0.2 M parameters; a forward pass takes milliseconds on a CPU core.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.name = "test"
    config.data.image_size = 32
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
    config.sampling.steps = 10
    return config
