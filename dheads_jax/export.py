"""Inference-only exports: parameters (orbax) plus a JSON with everything sampling needs.

An export folder holds ``params/`` (an orbax pytree, float32 or bfloat16) and
``export.json``: format version, the model / data / diffusion / sampling config blocks,
the audio encoder spec, the image size, which weights these are (EMA or raw), their
dtype, and provenance (step, source workdir, time, package version). The sampler rebuilds
the model from this JSON alone; no training config is needed. The stored config blocks
are merged over today's defaults (``configs/default.py``) when read, so an export written
before a field existed gets that field's default, which is the official behaviour.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections

import dheads_jax
from configs import default as default_config
from dheads_jax import checkpointing, distributed
from dheads_jax.data.audio import AudioEncoderSpec
from dheads_jax.models import factory

FORMAT_VERSION = 1
META_NAME = "export.json"
PARAMS_NAME = "params"
CONFIG_BLOCKS = ("data", "model", "diffusion", "sampling")


class ExportError(ValueError):
    """An export that cannot be used; the message names the folder and the problem."""


def write_export(
    out_dir: str,
    params,
    config: ml_collections.ConfigDict,
    *,
    weights: str,
    dtype: str = "float32",
    provenance=None,
) -> str:
    """Writes ``params`` and the metadata of ``config`` to ``out_dir`` (replaced atomically).

    Args:
      out_dir: the export folder (must not be inside a training checkpoint folder).
      params: U-Net parameters (float32).
      config: the experiment config the parameters belong to.
      weights: "ema" or "raw".
      dtype: "float32" or "bfloat16" storage of the exported parameters.
      provenance: extra facts (step, source workdir, ...) stored under "provenance".

    Returns:
      out_dir.
    """
    if weights not in ("ema", "raw"):
        raise ValueError(f"weights must be 'ema' or 'raw', got {weights!r}")
    meta = dict(
        format_version=FORMAT_VERSION,
        dheads_jax_version=dheads_jax.__version__,
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        weights=weights,
        dtype=dtype,
        image_size=config.data.image_size,
        input_channels=factory.input_channels(config),
        audio_encoder=AudioEncoderSpec.from_data_config(config.data).to_json(),
        config={k: json.loads(config[k].to_json()) for k in CONFIG_BLOCKS},
        provenance=dict(provenance or {}),
    )
    cast = jax.tree.map(lambda x: jnp.asarray(x, jnp.dtype(dtype)), params)
    out_dir = os.path.abspath(out_dir)
    # The same temporary name on every process: the orbax save below is collective.
    tmp = f"{out_dir}.tmp"
    main = jax.process_index() == 0
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    distributed.barrier("export: folder ready")
    checkpointing.save_pytree(os.path.join(tmp, PARAMS_NAME), cast)
    if main:
        with open(os.path.join(tmp, META_NAME), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    distributed.barrier("export: renamed")
    return out_dir


def config_from_meta(meta: dict) -> ml_collections.ConfigDict:
    """The config blocks stored in an export merged over today's defaults.

    Fields the export lacks (it was written before they existed) take their default;
    fields it has that no longer exist are kept, so nothing it says is lost.
    """
    config = merged_over_defaults({k: meta["config"][k] for k in CONFIG_BLOCKS})
    config.name = "export"
    return config


def merged_over_defaults(stored: dict) -> ml_collections.ConfigDict:
    """A stored config (an export's blocks, a checkpoint's whole config) over today's defaults."""
    config = default_config.get_config()
    for k, v in stored.items():
        if isinstance(v, dict) and k in config:
            config[k].update(v)
        else:
            config[k] = v
    return config


def encoder_spec(meta: dict) -> AudioEncoderSpec:
    """The audio encoder of an export (either JSON form)."""
    return AudioEncoderSpec.from_json(meta["audio_encoder"])


def read_meta(export_dir: str) -> dict:
    """export.json of a folder, checked; raises ExportError naming what is wrong."""
    path = os.path.join(export_dir, META_NAME)
    if not os.path.isdir(export_dir):
        raise ExportError(f"{export_dir}: no such export folder")
    if not os.path.exists(path):
        raise ExportError(f"{export_dir}: not an export (no {META_NAME}); make one with run_export.py")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ExportError(f"{path}: unreadable ({e})") from e
    if meta.get("format_version") != FORMAT_VERSION:
        raise ExportError(
            f"{export_dir}: export format {meta.get('format_version')!r}, this dheads_jax "
            f"{dheads_jax.__version__} reads format {FORMAT_VERSION}"
        )
    if not os.path.isdir(os.path.join(export_dir, PARAMS_NAME)):
        raise ExportError(f"{export_dir}: the {PARAMS_NAME}/ folder is missing")
    return meta


def load_export(export_dir: str):
    """(config, params, meta) of an export; params are float32 for computation.

    Raises:
      ExportError: missing files, another format version, or parameters that do not fit.
    """
    meta = read_meta(export_dir)
    config = config_from_meta(meta)
    abstract = factory.param_shapes(config)
    stored = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, jnp.dtype(meta["dtype"])), abstract)
    try:
        params = checkpointing.load_pytree(os.path.join(export_dir, PARAMS_NAME), stored)
    except Exception as e:  # orbax raises many types for a damaged or mismatched tree
        raise ExportError(f"{export_dir}: parameters do not load ({type(e).__name__}: {str(e)[:200]})") from e
    return config, jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params), meta
