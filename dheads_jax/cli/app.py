"""run_app.py: the local web app, its model loaded and compiled once, then served."""

from __future__ import annotations

import sys

from absl import flags, logging

from dheads_jax.cli import start


def main(argv) -> int:
    start(argv, processes=False)
    from dheads_jax import bundled, generate, webapp

    f = flags.FLAGS
    try:
        export_dir = f.export
        if not export_dir:
            export_dir = bundled.default_export()
            logging.info("no --export: using the bundled model %s", export_dir)
        maker = webapp.VideoMaker(export_dir, f.output_dir, f.max_seconds, f.upscale)
    except (bundled.NoBundledModel, *generate.EXPECTED_ERRORS) as e:
        print(f"run_app.py: {e}", file=sys.stderr)
        return 1
    logging.info(
        "compiling the frame step (%d px, %d steps)", maker.sampler.image_size, maker.sampler.options.steps
    )
    logging.info("compiled in %.1f s", maker.warm_up())
    try:
        demo = webapp.launch(maker, f.host, f.port, block=False)
    except OSError as e:
        reason = str(e).split(". ")[0]
        print(
            f"run_app.py: cannot serve on {f.host}:{f.port} ({reason}); try another --port", file=sys.stderr
        )
        return 1
    logging.info("serving on http://%s:%d (videos in %s)", f.host, f.port, maker.output_dir)
    demo.block_thread()
    return 0
