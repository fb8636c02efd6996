"""From training to inference: a run's parameters written as an export (``dheads_jax.export``).

``write_final_export`` is called by the training loop at the end of a run;
``export_from_workdir`` re-exports any checkpoint of a workdir afterwards (run_sample.py
``--export_from``).
"""

from __future__ import annotations

import os

import jax
import ml_collections
from absl import logging

from dheads_jax import export
from dheads_jax.checkpointing import Checkpointer
from dheads_jax.models import factory
from dheads_jax.train.state import CONFIG, EMA_PARAMS, PARAMS, TrainState


def write_final_export(workdir: str, state: TrainState, config: ml_collections.ConfigDict) -> None:
    """WORKDIR/export: the EMA parameters when EMA is on, else the raw ones."""
    ema = state.ema_params is not None
    path = export.write_export(
        os.path.join(workdir, "export"),
        state.ema_params if ema else state.params,
        config,
        weights="ema" if ema else "raw",
        provenance=dict(step=int(jax.device_get(state.step)), source_workdir=os.path.abspath(workdir)),
    )
    logging.info("wrote the inference export %s", path)


def export_from_workdir(
    workdir: str, out_dir: str, weights: str = "auto", dtype: str = "float32", step: int | None = None
) -> str:
    """Re-exports a training checkpoint (the latest, or ``step``) as an inference export.

    Args:
      workdir: a training workdir (its checkpoints/ folder).
      out_dir: the export folder to write.
      weights: "ema", "raw", or "auto" (EMA when the checkpoint has it).
      dtype: storage dtype of the exported parameters.
      step: checkpoint step; default the latest.

    Returns:
      out_dir.

    Raises:
      export.ExportError: no checkpoint, or EMA asked of a checkpoint without it.
    """
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    step = ckpt.latest_step() if step is None else step
    if step is None:
        raise export.ExportError(f"{workdir}: no checkpoint to export")
    config = export.merged_over_defaults(ckpt.restore_json(CONFIG, step))
    has_ema = ckpt.has_item(EMA_PARAMS, step)
    if weights == "auto":
        weights = "ema" if has_ema else "raw"
    if weights == "ema" and not has_ema:
        raise export.ExportError(f"{workdir}: checkpoint {step} has no EMA parameters (ema_decay was 0)")
    params = ckpt.restore_item(EMA_PARAMS if weights == "ema" else PARAMS, factory.param_shapes(config), step)
    provenance = dict(step=step, source_workdir=os.path.abspath(workdir))
    return export.write_export(out_dir, params, config, weights=weights, dtype=dtype, provenance=provenance)
