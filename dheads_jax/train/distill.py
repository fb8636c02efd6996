"""Progressive distillation of an export into a student that samples in a few DDIM steps.

Each round's student starts as a copy of its teacher and learns to make in one
deterministic DDIM step what the teacher makes in two; the first teacher's audio guidance
is distilled into the student's single pass (docs/method.md, section 9). The chain
identities live in ``diffusion/distillation.py``, the rounds in ``train/rounds.py``, the
student's export in ``train/exporting.py``; the loop is training's own (``train/runner.py``).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging

from dheads_jax import export, parallel
from dheads_jax.diffusion import ddim_step, network_input, output_to_eps, q_sample
from dheads_jax.diffusion.chain import ChainOptions
from dheads_jax.diffusion.distillation import prediction_for_x0, teacher_ddim_steps, x0_target
from dheads_jax.models import factory
from dheads_jax.sampling import SamplingOptions, UNetApply
from dheads_jax.train import optimizer, rounds, runner
from dheads_jax.train.exporting import write_student_export
from dheads_jax.train.state import DATA, OPT_STATE, PARAMS
from dheads_jax.train.step import step_key_and_batch

# Checkpoint items beyond training's: the current teacher and the plan of rounds (JSON).
TEACHER_PARAMS, PLAN = "teacher_params", "plan"
DISTILL_KEYS = ("steps", "noise", "dropout")
LR_SCHEDULES = ("constant", "linear")


class DistillError(runner.TrainingError):
    """An expected failure of a distillation run; its message is one line."""


def distill_loss(params, teacher_params, model: nn.Module, tables: rounds.RoundTables, batch, key, options):
    """The student's mean distance to its teacher's two-step target over a batch.

    Each example draws a student index j uniformly from the round's chain, noises its target
    frame to the student's timestep (z = a x_0 + s eps), runs the teacher's two DDIM steps
    from z (no gradient), and compares the student's prediction (with dropout) with the one
    that ``x0_target`` implies.

    Args:
      params: the student's parameters (differentiated); teacher_params: the teacher's.
      model: the U-Net of both.
      tables: the round's schedules.
      batch: training batch ('target', 'identity', 'motion', 'audio').
      key: the step's key (split into ``DISTILL_KEYS``).
      options: the teacher's chain (parametrization, identity_relative, the round's
        audio_guidance and null_audio); the student is one pass.

    Returns:
      (loss, metrics): ``loss`` the MSE in the prediction's space; ``step_mse`` the MSE
      between the student's own DDIM step and the teacher's two steps (state space).
    """
    keys = dict(zip(DISTILL_KEYS, jax.random.split(key, len(DISTILL_KEYS)), strict=True))
    x_start, student = batch["target"], tables.student
    condition = (batch["identity"], batch["motion"], batch["audio"])
    j = jax.random.randint(keys["steps"], (x_start.shape[0],), 0, tables.num_student_steps)
    z = q_sample(student, x_start, j, jax.random.normal(keys["noise"], x_start.shape, jnp.float32))
    z_teacher = teacher_ddim_steps(
        UNetApply(model), teacher_params, tables.teacher, z, 2 * j + 1, condition, options
    )
    z_teacher = jax.lax.stop_gradient(z_teacher)
    x0 = x0_target(student, z, j, z_teacher)
    z_in = network_input(student, z, j, batch["identity"], options.identity_relative)
    if options.identity_relative:
        x0 = x0 - batch["identity"]
    target = prediction_for_x0(student, x0, z_in, j, options.parametrization)
    t = jnp.take(student.timesteps, j)
    out = model.apply({"params": params}, z_in, t, *condition, train=True, rngs={"dropout": keys["dropout"]})
    out = out.astype(jnp.float32)
    loss = ((out[..., : x_start.shape[-1]] - target) ** 2).mean()
    own = output_to_eps(student, jax.lax.stop_gradient(out), z_in, j, options.parametrization)
    z_student, _ = ddim_step(student, own, z, j, jnp.zeros_like(z), eta=0.0)
    return loss, dict(loss=loss, step_mse=((z_student - z_teacher) ** 2).mean())


@flax.struct.dataclass
class DistillState:
    """Everything a distillation step reads and writes.

    Attributes:
      step: int32 scalar, optimizer steps taken over all rounds.
      params: the student's parameters.
      teacher_params: the current round's teacher (the previous round's student).
      opt_state: the optimizer's state (reset every round).
    """

    step: jax.Array
    params: Any
    teacher_params: Any
    opt_state: Any


def make_distill_step(model: nn.Module, tx: optax.GradientTransformation, config, options: ChainOptions):
    """``step(state, batch, tables) -> (state, metrics)``; callers jit it with their shardings.

    Randomness comes from ``fold_in(key(config.seed), state.step)``, so a resumed run draws
    exactly what an uninterrupted one would; ``options`` is the round's teacher chain (two
    programs at most: the guided first round and the rest).
    """
    base_key = jax.random.key(config.seed)

    def step(state: DistillState, batch: dict, tables: rounds.RoundTables):
        # As in training: the step's key, the recipe's appearance augmentations and its
        # identity mask (the mouth box is not used beyond them).
        key, batch = step_key_and_batch(base_key, state.step, batch, config)
        grad_fn = jax.value_and_grad(distill_loss, has_aux=True)
        (_, metrics), grads = grad_fn(state.params, state.teacher_params, model, tables, batch, key, options)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = dict(metrics, grad_norm=optax.tree.norm(grads))
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return step


def initial_state(teacher_params, tx: optax.GradientTransformation) -> DistillState:
    """Round one's state: the student a copy of the teacher, a fresh optimizer."""
    return DistillState(
        step=jnp.zeros((), jnp.int32),
        params=jax.tree.map(jnp.copy, teacher_params),
        teacher_params=teacher_params,
        opt_state=tx.init(teacher_params),
    )


def next_round(state: DistillState, tx: optax.GradientTransformation) -> DistillState:
    """The state at a round boundary: the student becomes the teacher of a fresh copy of itself."""
    return state.replace(teacher_params=jax.tree.map(jnp.copy, state.params), opt_state=tx.init(state.params))


def distill_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Adam at ``distill.lr`` with ``optim``'s betas, eps and clipping: constant, or (``distill.
    lr_schedule="linear"``) falling linearly to 0 over every round, since each round starts
    from a fresh optimizer state whose step count restarts at 0."""
    schedule = config.distill.lr_schedule
    if schedule not in LR_SCHEDULES:
        raise DistillError(f"distill.lr_schedule must be one of {LR_SCHEDULES}, got {schedule!r}")
    optim = ml_collections.ConfigDict(config.optim.to_dict())
    optim.lr, optim.num_decays, optim.warmup_steps = float(config.distill.lr), 0, 0
    steps = int(config.distill.steps_per_round)
    linear = optax.linear_schedule(optim.lr, 0.0, steps) if schedule == "linear" else None
    return optimizer.make_optimizer(optim, steps, linear)


def distill_config(config: ml_collections.ConfigDict, teacher_config: ml_collections.ConfigDict):
    """The run's config: ``config`` with the teacher export's data, model, diffusion and sampling.

    The network and its inputs are the teacher's; the run (train.batch_size, optim, mesh,
    distill, seed, checkpoints) is ``config``'s. The dataset is ``config``'s when it names one
    (data.dataset_dir or data.samples_dir), else the teacher's.
    """
    merged = ml_collections.ConfigDict(config.to_dict())
    for block in export.CONFIG_BLOCKS:
        merged[block] = ml_collections.ConfigDict(teacher_config[block].to_dict())
    if config.data.dataset_dir or config.data.samples_dir:
        merged.data.dataset_dir, merged.data.samples_dir = config.data.dataset_dir, config.data.samples_dir
    return merged


def restore_state(ckpt, targets: DistillState, plan: rounds.Plan, workdir: str):
    """(state, data position) of the latest checkpoint; refuses a workdir of another plan."""
    items = {PARAMS: targets.params, TEACHER_PARAMS: targets.teacher_params, OPT_STATE: targets.opt_state}
    arrays, json_items = ckpt.restore(None, items, (DATA, PLAN))
    if json_items[PLAN] != plan.to_json():
        saved = json_items[PLAN]
        raise DistillError(
            f"{workdir} holds a distillation of another plan ({saved['grids'][0][:4]}... "
            f"{len(saved['grids'][-1])} steps); use a new workdir"
        )
    step = jnp.asarray(ckpt.latest_step(), jnp.int32)
    return DistillState(step, arrays[PARAMS], arrays[TEACHER_PARAMS], arrays[OPT_STATE]), json_items[DATA]


def round_line(plan: rounds.Plan, index: int, m: dict) -> str:
    """The console words of step ``index``'s metrics: its round, loss, step MSE, gradient."""
    r = plan.round_of(index)
    return (
        f"round {r + 1}/{plan.num_rounds} ({len(plan.grids[r])} -> {len(plan.grids[r + 1])} steps) | "
        f"loss {m['loss']:.5f} step_mse {m['step_mse']:.5f} | grad {m['grad_norm']:.3f}"
    )


def distillation_task(config, plan: rounds.Plan, teacher, workdir: str, mesh) -> runner.Task:
    """The runner's task: ``teacher`` is (export dir, params, meta); one jitted step per
    teacher guidance, the round boundary taken before the first step of every round."""
    teacher_dir, teacher_params, teacher_meta = teacher
    options = SamplingOptions.from_config(config, audio_guidance=plan.audio_guidance, sampler="ddim", eta=0.0)
    model, tx = factory.build_unet(config), distill_optimizer(config)
    abstract = jax.eval_shape(lambda p: initial_state(p, tx), factory.param_shapes(config))
    shardings, repl = parallel.tree_shardings(mesh, abstract), parallel.replicated(mesh)
    steps = {
        g: jax.jit(
            make_distill_step(model, tx, config, options.replace(audio_guidance=g)),
            in_shardings=(shardings, parallel.batch_sharding(mesh), repl),
            out_shardings=(shardings, repl),
            donate_argnums=(0,),
        )
        for g in {plan.guidance(r) for r in range(plan.num_rounds)}
    }
    new_round = jax.jit(lambda s: next_round(s, tx), out_shardings=shardings, donate_argnums=(0,))
    tables = [
        parallel.put(t, jax.tree.map(lambda _: repl, t))
        for t in (rounds.round_tables(plan, r, options) for r in range(plan.num_rounds))
    ]

    def step(state, batch, index):
        r = plan.round_of(index)
        if index > 0 and index % plan.steps_per_round == 0:
            # Checkpoints are saved before this, so a resumed run takes it exactly once too.
            state = new_round(state)
            logging.info("round %d of %d starts", r + 1, plan.num_rounds)
        return steps[plan.guidance(r)](state, batch, tables[r])

    return runner.Task(
        label="distillation",
        total_steps=plan.total_steps,
        abstract=abstract,
        init=lambda s: jax.jit(lambda p: initial_state(p, tx), out_shardings=s)(
            parallel.put(teacher_params, s.teacher_params)
        ),
        restore=functools.partial(restore_state, plan=plan, workdir=workdir),
        items=lambda st: (
            {PARAMS: st.params, TEACHER_PARAMS: st.teacher_params, OPT_STATE: st.opt_state},
            {PLAN: plan.to_json()},
        ),
        step=step,
        describe=functools.partial(round_line, plan),
        export=lambda st: write_student_export(
            workdir, st.params, config, plan, (teacher_dir, teacher_meta), int(jax.device_get(st.step))
        ),
        must_log=lambda s: s % plan.steps_per_round == 0,
        curve_keys=("loss", "step_mse"),
    )


def distill(config: ml_collections.ConfigDict, teacher_dir: str, workdir: str, devices=None, on_step=None):
    """Distils the export ``teacher_dir`` into WORKDIR/export, resuming from WORKDIR's checkpoints.

    Args:
      config: the run's config (its train, optim, mesh, distill, seed; the network comes
        from the teacher, see ``distill_config``); ``distill.student_steps`` is N.
      teacher_dir: the teacher export.
      workdir: checkpoints/, metrics.csv, loss_curve.png, tensorboard/ and, at the end, export/.
      devices, on_step: as ``runner.run``.

    Returns:
      The final ``DistillState`` (on the mesh).

    Raises:
      DistillError: a non-finite loss, an unusable dataset, or a workdir of another plan.
      export.ExportError: a teacher that does not load.
    """
    teacher_config, teacher_params, teacher_meta = export.load_export(teacher_dir)
    config = distill_config(config, teacher_config)
    try:
        plan = rounds.make_plan(config)
    except ValueError as e:
        raise DistillError(str(e)) from e
    if jax.process_index() == 0:
        logging.info(
            "distilling %s (%s, %d steps, audio guidance %g) into %d DDIM steps: %d round(s) of %d steps",
            teacher_dir,
            teacher_config.sampling.sampler,
            teacher_config.sampling.steps,
            plan.audio_guidance,
            plan.student_steps,
            plan.num_rounds,
            plan.steps_per_round,
        )
        for r in plan.rounds_json():
            logging.info("round %d: %d -> %d steps", r["round"], r["teacher_steps"], r["student_steps"])
    os.makedirs(workdir, exist_ok=True)
    teacher = (teacher_dir, teacher_params, teacher_meta)
    try:
        return runner.run(
            config,
            workdir,
            lambda mesh, _: distillation_task(config, plan, teacher, workdir, mesh),
            devices,
            on_step,
        )
    except DistillError:
        raise
    except runner.TrainingError as e:
        raise DistillError(str(e)) from e
