"""The released CREMA model (docs/method.md, section 2): 128 px, colour motion frames, 12 input channels.

215,748,614 parameters. Paper-scale training: global batch 80 (10 per device on 8
A100 in the original, 8 days).

  python run_train.py --config=configs/crema.py --describe
  python run_train.py --config=configs/crema.py --workdir=gs://BUCKET/crema \
      --config.data.dataset_dir=/path/to/prepared/crema

Cost: about 216 M parameters (0.86 GB fp32); `--describe` prints the forward GFLOPs.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.name = "crema"
    config.data.grayscale_motion = False
    return config
