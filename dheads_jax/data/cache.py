"""Prepared copies of the bundled sample clips, made on first use.

A config that names no ``data.dataset_dir`` but a ``data.samples_dir`` trains on the
bundled GRID clips: they are prepared once (with the split file lists next to them)
into a cache folder keyed by everything that decides the dataset's content.
"""

from __future__ import annotations

import os
import re

import ml_collections
from absl import logging

from dheads_jax.data import audio, builder, process, sources

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cache_root() -> str:
    """$DHEADS_CACHE, else $XDG_CACHE_HOME/dheads_jax, else ~/.cache/dheads_jax."""
    if os.environ.get("DHEADS_CACHE"):
        return os.environ["DHEADS_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dheads_jax")


def prepare_settings(data: ml_collections.ConfigDict) -> process.PrepareSettings:
    """The preparation settings a config's data block implies (mel encoder only)."""
    if data.audio_encoder != "mel":
        raise ValueError(
            f"the bundled samples are prepared with the mel encoder; config.data.audio_encoder is "
            f"{data.audio_encoder!r}: set config.data.dataset_dir to a dataset prepared with it"
        )
    mel = audio.MelParams(num_mels=data.mel_bins, subframes=data.mel_subframes)
    return process.PrepareSettings(image_size=data.image_size, audio_encoder="mel", mel=mel)


def samples_dataset_dir(data: ml_collections.ConfigDict) -> str:
    """Where the prepared samples of this config live (prepared or not)."""
    name = os.path.basename(os.path.normpath(data.samples_dir))
    key = f"{name}_{data.image_size}px_mel{data.mel_bins}x{data.mel_subframes}"
    return os.path.join(cache_root(), key)


def file_lists(samples_dir: str) -> list[str]:
    """SPLIT=FILE entries for the ``file_list_<name>_<split>.txt`` files beside the clips."""
    parent, name = os.path.split(os.path.normpath(samples_dir))
    # A split is one word: file_list_grid_more_train.txt belongs to grid_more, not to grid.
    pattern = re.compile(rf"file_list_{re.escape(name)}_([A-Za-z0-9]+)\.txt")
    found = sorted((m.group(1), f) for f in os.listdir(parent) if (m := pattern.fullmatch(f)))
    return [f"{split}={os.path.join(parent, f)}" for split, f in found]


def ensure_dataset(config: ml_collections.ConfigDict, prepare: bool = True) -> str:
    """The dataset a config trains on, preparing the bundled samples if needed.

    Args:
      config: experiment config; uses config.data.dataset_dir, else config.data.samples_dir.
      prepare: build the cache if it is missing (False: only return the path).

    Returns:
      A dataset folder for ``input_pipeline`` / ``reader``.
    """
    data = config.data
    if data.dataset_dir:
        return data.dataset_dir
    if not data.samples_dir:
        raise ValueError("config.data.dataset_dir is empty and no config.data.samples_dir is set")
    samples = data.samples_dir if os.path.isabs(data.samples_dir) else os.path.join(ROOT, data.samples_dir)
    out = samples_dataset_dir(data)
    report = os.path.join(out, builder.REPORT_NAME)
    if os.path.exists(report) or not prepare:
        return out
    logging.info("preparing %s into %s (first use; later runs reuse it)", samples, out)
    result = builder.prepare_dataset(
        sources.ClipSpec(samples, file_lists=file_lists(samples)),
        out,
        settings=prepare_settings(data),
        engine=builder.Engine(num_workers=2),
    )
    if result.dataset_dir is None:
        raise RuntimeError(f"preparing {samples} wrote nothing; see {result.report_path}")
    return out


def main(argv):
    """``python -m dheads_jax.data.cache --config=CONFIG``: prepares if needed, prints the folder."""
    del argv
    print(ensure_dataset(_CONFIG.value))


if __name__ == "__main__":
    from absl import app, flags
    from ml_collections import config_flags

    _CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
    flags.mark_flags_as_required(["config"])
    app.run(main)
