r"""Prepares a talking-face dataset: a folder of clips -> TFRecord shards + TFDS metadata.

  python data/prepare.py --videos_dir=data/samples/grid --output_dir=/tmp/grid_ds

writes /tmp/grid_ds/talking_faces/1.0.0/ (point config.data.dataset_dir at /tmp/grid_ds) and
/tmp/grid_ds/prepare_report.json, which lists every skipped clip and why. Exits non-zero
only if nothing was written. See data/README.md for the layout and the options.
"""

import os
import sys

from absl import app, flags, logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dheads_jax.data import audio, builder, process  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("videos_dir", None, "Folder of clips (.mp4, .mpg, .avi, .mov, ...).", required=True)
flags.DEFINE_string("output_dir", None, "Where the dataset and the report go.", required=True)
flags.DEFINE_string("audio_dir", None, "Optional parallel folder of .wav/.mp3/.flac files.")
flags.DEFINE_multi_string(
    "file_list", [], "File list (one relative path per line); SPLIT=FILE names the split."
)
flags.DEFINE_integer("image_size", 128, "Side of the aligned crops.")
flags.DEFINE_enum("audio_encoder", "mel", list(audio.ENCODERS), "Per-frame audio embeddings.")
flags.DEFINE_integer("mel_bins", 64, "mel: mel bands per sub-frame.")
flags.DEFINE_integer("mel_subframes", 4, "mel: sub-frames per video frame (D = mel_bins * mel_subframes).")
flags.DEFINE_string("embeddings_dir", None, "external: folder of [T, D] .npy files, same relative paths.")
flags.DEFINE_string(
    "external_name", "external", "external: encoder name the training config uses (e.g. sda)."
)
flags.DEFINE_integer("num_workers", 1, "Clip-processing processes.")
flags.DEFINE_integer("num_shards", 0, "TFRecord shards per split; 0 picks max(4, size / 256 MiB).")
flags.DEFINE_integer("min_frames", 3, "Skip clips with fewer frames (m_x + 1).")
flags.DEFINE_float("max_av_mismatch", 0.2, "Largest audio/video length difference in seconds.")
flags.DEFINE_float("smoothing_sigma", 2.0, "Temporal smoothing of the alignment, in frames.")
flags.DEFINE_string("speaker_pattern", None, r"Regex for the speaker id, e.g. '^(\d{4})_' for CREMA-D.")
flags.DEFINE_enum("image_format", "png", ["png", "jpeg"], "Encoding of the stored frames.")
flags.DEFINE_bool("overwrite", False, "Replace an existing dataset in output_dir.")


def main(argv):
    del argv
    settings = process.PrepareSettings(
        image_size=FLAGS.image_size,
        audio_encoder=FLAGS.audio_encoder,
        mel=audio.MelParams(num_mels=FLAGS.mel_bins, subframes=FLAGS.mel_subframes),
        embeddings_dir=FLAGS.embeddings_dir,
        external_name=FLAGS.external_name,
        min_frames=FLAGS.min_frames,
        max_av_mismatch=FLAGS.max_av_mismatch,
        smoothing_sigma=FLAGS.smoothing_sigma,
        image_format=FLAGS.image_format,
    )
    result = builder.prepare_dataset(
        FLAGS.videos_dir,
        FLAGS.output_dir,
        audio_dir=FLAGS.audio_dir,
        file_lists=FLAGS.file_list,
        settings=settings,
        speaker_pattern=FLAGS.speaker_pattern,
        num_workers=FLAGS.num_workers,
        num_shards=FLAGS.num_shards or None,
        overwrite=FLAGS.overwrite,
    )
    total = sum(result.written.values())
    logging.info(
        "wrote %d clips %s to %s, skipped %d, in %.1f s; report: %s",
        total,
        result.written,
        result.dataset_dir,
        len(result.skipped),
        result.seconds,
        result.report_path,
    )
    return 0 if total else 1


if __name__ == "__main__":
    app.run(main)
