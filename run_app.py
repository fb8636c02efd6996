"""The local web app: a face and a speech recording in a browser, a talking video out.

  python run_app.py [--export=EXPORT_DIR] [--host=127.0.0.1] [--port=7860] [--max_seconds=60]

Without --export it serves the bundled default model. The model is loaded and compiled
once at start; jobs then run one at a time. It listens on 127.0.0.1 (this machine only)
unless --host says otherwise, and needs no network. --checkpoint is an old name of
--export. Needs the app extra: pip install -e ".[app]".
"""

from absl import app, flags

from dheads_jax.cli import app as app_command

flags.DEFINE_string("export", None, "An export folder (default: the bundled model).")
flags.DEFINE_alias("checkpoint", "export")
flags.DEFINE_string("host", "127.0.0.1", "Interface to listen on (0.0.0.0: every interface).")
flags.DEFINE_integer("port", 7860, "TCP port.")
flags.DEFINE_float("max_seconds", 60.0, "The longest audio a job may have, in seconds.")
flags.DEFINE_integer("upscale", None, "Resize frames to this size on output (default: the model's).")
flags.DEFINE_string("output_dir", None, "Where videos are kept (default: a new temporary folder).")

if __name__ == "__main__":
    app.run(app_command.main)
