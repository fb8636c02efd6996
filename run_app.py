"""The local web app: a face and a speech recording in a browser, a talking video out.

  python run_app.py [--export=EXPORT_DIR] [--host=127.0.0.1] [--port=7860] [--max_seconds=60]

Without --export it serves the bundled default model. The model is loaded and compiled
once at start; jobs then run one at a time. It listens on 127.0.0.1 (this machine only)
unless --host says otherwise, and needs no network. --checkpoint is an old name of
--export. Needs the app extra: pip install -e ".[app]".
"""

import sys

from absl import app, flags, logging

from dheads_jax.progress import quiet_library_logs

flags.DEFINE_string("export", None, "An export folder (default: the bundled model).")
flags.DEFINE_alias("checkpoint", "export")
flags.DEFINE_string("host", "127.0.0.1", "Interface to listen on (0.0.0.0: every interface).")
flags.DEFINE_integer("port", 7860, "TCP port.")
flags.DEFINE_float("max_seconds", 60.0, "The longest audio a job may have, in seconds.")
flags.DEFINE_integer("upscale", None, "Resize frames to this size on output (default: the model's).")
flags.DEFINE_string("output_dir", None, "Where videos are kept (default: a new temporary folder).")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    quiet_library_logs()
    from dheads_jax import bundled, generate, webapp

    try:
        export_dir = FLAGS.export
        if not export_dir:
            export_dir = bundled.default_export()
            logging.info("no --export: using the bundled model %s", export_dir)
        maker = webapp.VideoMaker(export_dir, FLAGS.output_dir, FLAGS.max_seconds, FLAGS.upscale)
    except (bundled.NoBundledModel, *generate.EXPECTED_ERRORS) as e:
        print(f"run_app.py: {e}", file=sys.stderr)
        return 1
    logging.info(
        "compiling the frame step (%d px, %d steps)", maker.sampler.image_size, maker.sampler.options.steps
    )
    logging.info("compiled in %.1f s", maker.warm_up())
    try:
        demo = webapp.launch(maker, FLAGS.host, FLAGS.port, block=False)
    except OSError as e:
        reason = str(e).split(". ")[0]
        print(
            f"run_app.py: cannot serve on {FLAGS.host}:{FLAGS.port} ({reason}); try another --port",
            file=sys.stderr,
        )
        return 1
    logging.info("serving on http://%s:%d (videos in %s)", FLAGS.host, FLAGS.port, maker.output_dir)
    demo.block_thread()
    return 0


if __name__ == "__main__":
    app.run(main)
