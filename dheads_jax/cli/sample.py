"""run_sample.py: videos from an export (one, a manifest or a dataset split).

Its older flags --export_from/--export_to/... run run_export.py's code (``cli.export``).
"""

from __future__ import annotations

import sys

from absl import app, flags

from configs import default as default_config
from dheads_jax import bundled
from dheads_jax.cli import export as export_command
from dheads_jax.cli import start
from dheads_jax.sampling.options import OVERRIDABLE

SAMPLING_HELP = {
    "steps": "Denoising steps per frame.",
    "sampler": "ddpm (official), ddim, or dpmpp (DPM-Solver++(2M), deterministic, few steps).",
    "eta": "DDIM noise scale (0 is deterministic).",
    "audio_guidance": "[ours] classifier-free guidance scale on the audio, silence as the null; 1 is off.",
    "guidance_region": "[ours] guide only inside this box: top,bottom,left,right fractions of the frame.",
    "guidance_interval": "[ours] guide only the steps with lo <= t/T <= hi: lo,hi (empty: every step).",
    "guidance_grey": "[ours] guide with the mean over colour channels of the two passes' difference.",
    "shared_noise": "[ours] every frame of a video starts from the same noise; off draws fresh noise per frame.",
    "stabilize": "Put the identity into the oldest motion slot every stabilize_every frames.",
    "stabilize_every": "Period of --stabilize in frames.",
}
DEFINE_BY_TYPE = {
    bool: flags.DEFINE_bool,
    int: flags.DEFINE_integer,
    float: flags.DEFINE_float,
    tuple: flags.DEFINE_list,
}


def define_sampling_flags() -> None:
    """A flag per overridable field of config.sampling (``OVERRIDABLE``), unset by default."""
    for name in OVERRIDABLE:
        default = default_config.get_config().sampling[name]
        DEFINE_BY_TYPE.get(type(default), flags.DEFINE_string)(
            name, None, f"{SAMPLING_HELP[name]} Default: the export's sampling.{name} (configs: {default!r})."
        )


def main(argv) -> int:
    start(argv)
    from dheads_jax import generate

    f = flags.FLAGS
    if f.export_from:  # the older spelling of run_export.py
        if not f.export_to:
            raise app.UsageError("--export_from needs --export_to")
        return export_command.export_workdir(
            "run_sample.py", f.export_from, f.export_to, f.weights, f.export_dtype, f.step
        )
    try:
        export_dir = f.export
        if not export_dir:
            export_dir = bundled.default_export()
            print(f"run_sample.py: no --export given; using the bundled default model ({export_dir})")
        request = generate.Request(
            id_image=f.id_image,
            audio=f.audio,
            output=f.output,
            audio_embeddings=f.audio_embeddings,
            audio_encoder_file=f.audio_encoder_file,
            manifest=f.manifest,
            dataset=f.dataset,
            split=f.split,
            output_dir=f.output_dir,
        )
        overrides = {name: f[name].value for name in OVERRIDABLE}
        summary = generate.run(export_dir, request, overrides, f.seed, f.batch_size, f.upscale)
    except (*generate.EXPECTED_ERRORS, bundled.NoBundledModel) as e:
        print(f"run_sample.py: {e}", file=sys.stderr)
        return 1
    print(summary.message)
    return 1 if summary.failed else 0
