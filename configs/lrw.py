"""The paper's LRW setting: grayscale motion frames, 8 input channels, 215,739,398 parameters.

  python run_train.py --config=configs/lrw.py --describe
  python run_train.py --config=configs/lrw.py --workdir=gs://BUCKET/lrw \
      --config.data.dataset_dir=/path/to/prepared/lrw

Cost: as configs/crema.py (20 days on 8 A100 in the original).
"""

from configs import default


def get_config():
    config = default.get_config()
    config.name = "lrw"
    config.data.grayscale_motion = True
    return config
