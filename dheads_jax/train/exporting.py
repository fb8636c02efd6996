"""From training to inference: a run's parameters written as an export (``dheads_jax.export``).

``write_final_export`` is called by the training loop at the end of a run,
``write_student_export`` by distillation's; ``export_from_workdir`` re-exports any checkpoint
of a workdir afterwards (run_export.py).
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


def student_export_config(config: ml_collections.ConfigDict, plan) -> ml_collections.ConfigDict:
    """The config the student is exported with: DDIM at ``distill.student_eta`` (0: as trained),
    guidance off, on its own timesteps."""
    out = ml_collections.ConfigDict(config.to_dict())
    out.sampling.steps = plan.student_steps
    out.sampling.timesteps = tuple(plan.grids[-1])
    out.sampling.sampler = "ddim"
    out.sampling.eta = float(config.distill.student_eta)
    out.sampling.audio_guidance = 1.0
    return out


def teacher_summary(teacher_dir: str, meta: dict) -> dict:
    """What the student export records of its teacher."""
    keep = ("weights", "dtype", "created", "dheads_jax_version", "provenance")
    return dict(path=os.path.abspath(teacher_dir), sampling=meta["config"]["sampling"]) | {
        k: meta[k] for k in keep if k in meta
    }


def write_student_export(workdir: str, params, config, plan, teacher: tuple[str, dict], step: int) -> None:
    """WORKDIR/export: a distilled student's parameters, its sampling defaults and what it was
    distilled from (``plan``: the run's ``rounds.Plan``; ``teacher``: the teacher export's
    folder and metadata; ``step``: the run's last optimizer step)."""
    teacher_dir, teacher_meta = teacher
    provenance = dict(
        step=step,
        source_workdir=os.path.abspath(workdir),
        distillation=dict(
            method="progressive",
            teacher=teacher_summary(teacher_dir, teacher_meta),
            student_steps=plan.student_steps,
            first_teacher_steps=plan.first_teacher_steps,
            sampler="ddim",
            eta=0.0,
            distilled_audio_guidance=plan.audio_guidance,
            num_rounds=plan.num_rounds,
            steps_per_round=plan.steps_per_round,
            lr=float(config.distill.lr),
            lr_schedule=config.distill.lr_schedule,
            batch_size=int(config.train.batch_size),
            rounds=plan.rounds_json(),
        ),
    )
    path = export.write_export(
        os.path.join(workdir, "export"),
        params,
        student_export_config(config, plan),
        weights="raw",
        provenance=provenance,
    )
    logging.info("wrote the student export %s (%d DDIM steps, one pass each)", path, plan.student_steps)
