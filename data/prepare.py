r"""Prepares a talking-face dataset: a folder of clips -> TFRecord shards + TFDS metadata.

  python data/prepare.py --videos_dir=data/samples/grid --output_dir=/tmp/grid_ds

writes /tmp/grid_ds/talking_faces/1.0.0/ (point config.data.dataset_dir at /tmp/grid_ds) and
/tmp/grid_ds/prepare_report.json, which lists every skipped clip and why. Exits non-zero
only if nothing was written. The same dataset built by Apache Beam (one machine here; Dataflow,
Flink or Spark for LRW- and VoxCeleb-size sets, see data/README.md):

  python data/prepare.py --videos_dir=data/samples/grid --output_dir=/tmp/grid_ds \
      --beam_pipeline_options="runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"
"""

import os
import sys
from collections.abc import Sequence

from absl import app, flags, logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dheads_jax.data import arrays, audio, builder, process, sources  # noqa: E402
from dheads_jax.progress import quiet_library_logs  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "videos_dir",
    None,
    "Folder of clips (.mp4, .mpg, .avi, .mov, ...); local or gs://. Without it, "
    "--arrays_dir exports the dataset already in --output_dir.",
)
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
flags.DEFINE_enum(
    "layout",
    "flat",
    list(sources.LAYOUTS),
    "Folder layout: flat (any), lrw (WORD/{train,val,test}/WORD_NNNNN.mp4: split from the folder), "
    "voxceleb (idNNNNN/VIDEO/NNNNN.mp4: speaker from the folder).",
)
flags.DEFINE_integer(
    "detect_every",
    1,
    "Run the face detector on every k-th frame only (landmarks on every frame, the face box "
    "tracked in between); 1 detects on every frame.",
)
flags.DEFINE_string(
    "beam_pipeline_options",
    None,
    "Build with Apache Beam (the beam extra), options in TFDS's syntax, e.g. "
    "'runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing'. "
    "Without it: the local process pool (--num_workers).",
)
flags.DEFINE_string("speaker_pattern", None, r"Regex for the speaker id, e.g. '^(\d{4})_' for CREMA-D.")
flags.DEFINE_enum("image_format", "png", ["png", "jpeg"], "Encoding of the stored frames.")
flags.DEFINE_bool("overwrite", False, "Replace an existing dataset in output_dir.")
flags.DEFINE_string(
    "arrays_dir", None, "Also write the dataset as numpy arrays here, for training without TensorFlow."
)


def summary_line(result: builder.PrepareResult) -> str:
    """One line: clips written per split, skipped per reason, time, report."""
    total = sum(result.written.values())
    reasons = ", ".join(f"{r} {n}" for r, n in builder.skip_counts(result.skipped).items())
    return (
        f"wrote {total} clips {result.written} to {result.dataset_dir}; skipped {len(result.skipped)}"
        f"{f' ({reasons})' if reasons else ''}; {result.seconds:.1f} s; report: {result.report_path}"
    )


def main(argv: Sequence[str]) -> int:
    del argv
    quiet_library_logs()
    if FLAGS.detect_every < 1:
        sys.exit(f"--detect_every must be at least 1, got {FLAGS.detect_every}")
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
        detect_every=FLAGS.detect_every,
    )
    if FLAGS.videos_dir is None and FLAGS.arrays_dir is None:
        sys.exit("prepare: give --videos_dir (and --arrays_dir to export arrays too), or --arrays_dir alone")
    try:
        if FLAGS.videos_dir is not None:
            result = prepare(settings)
            logging.info("%s", summary_line(result))
            if not sum(result.written.values()):
                return 1
        if FLAGS.arrays_dir:
            arrays.export_arrays(FLAGS.output_dir, FLAGS.arrays_dir)
            logging.info("wrote the arrays of %s to %s", FLAGS.output_dir, FLAGS.arrays_dir)
    except (ValueError, FileExistsError, FileNotFoundError, OSError, ImportError) as e:
        sys.exit(f"prepare: {e}")
    return 0


def prepare(settings: process.PrepareSettings) -> builder.PrepareResult:
    if FLAGS.beam_pipeline_options:
        try:
            import apache_beam  # noqa: F401, PLC0415
        except ImportError as e:
            raise ImportError("--beam_pipeline_options needs Apache Beam: pip install -e '.[beam]'") from e
    clips = sources.ClipSpec(
        videos_dir=FLAGS.videos_dir,
        audio_dir=FLAGS.audio_dir,
        file_lists=FLAGS.file_list,
        speaker_pattern=FLAGS.speaker_pattern,
        layout=FLAGS.layout,
    )
    engine = builder.Engine(
        num_workers=FLAGS.num_workers,
        num_shards=FLAGS.num_shards or None,
        beam_options=FLAGS.beam_pipeline_options,
    )
    return builder.prepare_dataset(
        clips, FLAGS.output_dir, settings=settings, engine=engine, overwrite=FLAGS.overwrite
    )


if __name__ == "__main__":
    app.run(main)
