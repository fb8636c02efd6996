"""Progressive distillation of an export into a student that samples in a few DDIM steps.

Progressive distillation (Salimans & Ho, 2022) halves the number of sampling steps per
round: the student starts as a copy of its teacher and learns to make, in one
deterministic DDIM step (eta 0), the move that the teacher makes in two; the student of one
round is the teacher of the next. From a teacher export sampled with n0 = N * 2^k steps,
k rounds give a student of N steps.

Why this method and not consistency distillation: it reuses the project's deterministic
DDIM step and its x0 parametrization as they are, needs no extra network or metric, every
round regresses onto an exact target (so a round's progress is measured directly as the
distance between the student's step and the teacher's two), and it is what guided
distillation (Meng et al., 2023) used to distil classifier-free guidance into the student,
which is done here with the audio guidance.

The chains. Round r's teacher samples on the timesteps G_r (increasing; G_0 is the official
respacing of n0 steps), its student on G_{r+1} = G_r[1::2], every odd entry. Student index j
(timestep G_r[2j+1]) then steps to G_r[2j-1] exactly where the teacher gets in its two steps
2j+1 -> 2j -> 2j-1, and the last student step (j = 0) ends at x_0 where the teacher's second
step (index 0) does. The student's timesteps go into its export's ``sampling.timesteps``.

The target. With a = sqrt(abar_t), s = sqrt(1 - abar_t) at the
student's timestep and a'', s'' at the one it steps to (a'' = 1, s'' = 0 for the last step), a
DDIM step with eta 0 from z with clamped x0_hat x is z'' = a'' x + s'' (z - a x) / s. The
student's x0 target that lands on the teacher's two-step result z''_T is therefore

    x_tilde = (z''_T - (s'' / s) z) / (a'' - (s'' / s) a),

a convex combination of the teacher's two clamped x0 predictions (so inside [-1, 1], where the
student's own clamp leaves it alone), and z''_T itself at the last step. The loss is the
MSE in the network's own output space between its prediction and the eps (or v) that
x_tilde implies, i.e. the x0 error weighted by SNR (eps) or SNR + 1 (v, the weighting
Salimans & Ho recommend).

Guidance. The first teacher's output is the guided one (the export's ``audio_guidance``, two
passes: with the audio and with the silence embedding); every student is one pass with the
audio. The distilled students' export samples with guidance off (scale 1: one network pass
per step), DDIM, eta 0.

Training machinery is training's own: the input pipeline, the (data, fsdp) mesh with
NamedSharding, orbax checkpoints with the data position, SIGTERM -> checkpoint at the next
step boundary and an exact resume, ``Progress`` and a ``MetricLogger``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from dheads_jax import export, input_pipeline, parallel
from dheads_jax.checkpointing import Checkpointer
from dheads_jax.diffusion import (
    Schedule,
    ddim_step,
    network_input,
    output_to_eps,
    q_sample,
    space_timesteps,
    v_target,
)
from dheads_jax.diffusion.chain import ApplyFn, guided_output
from dheads_jax.diffusion.gaussian import extract, predict_eps_from_xstart
from dheads_jax.models import factory
from dheads_jax.progress import Progress
from dheads_jax.sampling import SamplingOptions, UNetApply
from dheads_jax.train import augment, monitor, optimizer
from dheads_jax.train.loop import MODEL_INPUTS, Preemption, TrainingError, config_json, prepare_data
from dheads_jax.train.state import CONFIG, DATA, OPT_STATE, PARAMS
from dheads_jax.train.step import AUGMENT_STREAM

# Checkpoint items beyond training's: the current teacher and the plan of rounds (JSON).
TEACHER_PARAMS, PLAN = "teacher_params", "plan"


class DistillError(TrainingError):
    """An expected failure of a distillation run; its message is one line."""


# ---------------------------------------------------------------------------------------------
# The plan: how many rounds, on which timesteps.


def start_steps(teacher_steps: int, student_steps: int, num_timesteps: int) -> int:
    """The first teacher's step count n0 = N * 2^k (k >= 1) nearest ``teacher_steps`` in log scale.

    A teacher sampled with 100 steps and N = 4 starts at 128 (5 rounds), one sampled with 10
    steps at 8 (1 round): the nearest power-of-two multiple keeps the first teacher's chain
    close to the one its export was tuned for, and at least one round is always made.

    Args:
      teacher_steps: the teacher export's own ``sampling.steps``.
      student_steps: N.
      num_timesteps: T; n0 may not exceed it.

    Raises:
      ValueError: N * 2 > T.
    """
    if student_steps < 1 or 2 * student_steps > num_timesteps:
        raise ValueError(f"cannot distil into {student_steps} steps of a {num_timesteps}-step chain")
    k = max(1, round(math.log2(max(teacher_steps, 1) / student_steps)))
    while student_steps * 2**k > num_timesteps:
        k -= 1
    return student_steps * 2**k


@dataclasses.dataclass(frozen=True)
class Plan:
    """The rounds of a distillation run.

    Attributes:
      grids: G_0 .. G_K, each round's teacher timesteps (G_0: the official respacing of n0
        steps) and, last, the final student's; G_{r+1} = G_r[1::2].
      steps_per_round: optimizer steps of every round.
      audio_guidance: the first teacher's guidance scale (later teachers are students: 1).
    """

    grids: tuple[tuple[int, ...], ...]
    steps_per_round: int
    audio_guidance: float

    @classmethod
    def create(
        cls,
        num_timesteps: int,
        first_steps: int,
        student_steps: int,
        steps_per_round: int,
        guidance: float,
        first_grid: tuple[int, ...] = (),
    ):
        """The plan from n0 (``first_steps``, N * 2^k with k >= 1) down to N steps.

        Args:
          num_timesteps: T.
          first_steps: n0.
          student_steps: N.
          steps_per_round: optimizer steps per round.
          guidance: the first teacher's audio guidance scale.
          first_grid: the first teacher's timesteps when it has its own (a distilled
            teacher); () for the official respacing of n0 steps.

        Raises:
          ValueError: n0 is not N times a power of two (at least 2), or exceeds T.
        """
        k = round(math.log2(first_steps / student_steps)) if first_steps > 0 and student_steps > 0 else 0
        if k < 1 or student_steps * 2**k != first_steps or first_steps > num_timesteps:
            raise ValueError(
                f"the first teacher's steps must be {student_steps} * 2^k (k >= 1) and at most "
                f"{num_timesteps}, got {first_steps}"
            )
        if steps_per_round < 1:
            raise ValueError(f"steps_per_round must be positive, got {steps_per_round}")
        grids = [tuple(first_grid) if first_grid else tuple(space_timesteps(num_timesteps, first_steps))]
        while len(grids[-1]) > student_steps:
            grids.append(grids[-1][1::2])
        return cls(tuple(grids), int(steps_per_round), float(guidance))

    @property
    def num_rounds(self) -> int:
        return len(self.grids) - 1

    @property
    def total_steps(self) -> int:
        return self.num_rounds * self.steps_per_round

    def round_of(self, step: int) -> int:
        """The round that optimizer step ``step`` (0-based) belongs to."""
        return min(step // self.steps_per_round, self.num_rounds - 1)

    def guidance(self, round_index: int) -> float:
        """The teacher's guidance scale in a round: the export's in the first, 1 (off) after."""
        return self.audio_guidance if round_index == 0 else 1.0

    def to_json(self) -> dict:
        return dict(
            grids=[list(g) for g in self.grids],
            steps_per_round=self.steps_per_round,
            audio_guidance=self.audio_guidance,
        )

    def rounds_json(self) -> list[dict]:
        """One entry per round, for logs and the export's metadata."""
        return [
            dict(
                round=r + 1,
                teacher_steps=len(self.grids[r]),
                student_steps=len(self.grids[r + 1]),
                optimizer_steps=self.steps_per_round,
                teacher_audio_guidance=self.guidance(r),
                teacher_timesteps=list(self.grids[r]),
                student_timesteps=list(self.grids[r + 1]),
            )
            for r in range(self.num_rounds)
        ]


def chain_schedule(options: SamplingOptions, grid: tuple[int, ...], length: int | None = None) -> Schedule:
    """The schedule of a chain on ``grid``, its arrays padded (with the last entry) to ``length``.

    The padding keeps the shapes of every round's schedules the same, so that one compiled
    step serves all rounds; the entries past ``len(grid)`` are never read.
    """
    schedule = options.replace(steps=len(grid), timesteps=tuple(grid)).make_schedule()
    pad = (length or len(grid)) - len(grid)
    return jax.tree.map(lambda a: jnp.pad(a, (0, pad), mode="edge"), schedule) if pad else schedule


@flax.struct.dataclass
class RoundTables:
    """What a step needs to know of its round (replicated arrays, the same shapes every round).

    Attributes:
      teacher: the teacher's schedule on G_r (padded).
      student: the student's schedule on G_{r+1} (padded).
      num_student_steps: int32 scalar, len(G_{r+1}).
    """

    teacher: Schedule
    student: Schedule
    num_student_steps: jax.Array


def round_tables(plan: Plan, round_index: int, options: SamplingOptions) -> RoundTables:
    """The tables of round ``round_index`` (0-based), padded to the first teacher's length."""
    n0 = len(plan.grids[0])
    student = plan.grids[round_index + 1]
    return RoundTables(
        teacher=chain_schedule(options, plan.grids[round_index], n0),
        student=chain_schedule(options, student, n0),
        num_student_steps=jnp.asarray(len(student), jnp.int32),
    )


# ---------------------------------------------------------------------------------------------
# The target and the loss: pure functions.


def x0_target(student: Schedule, z: jax.Array, j: jax.Array, z_teacher: jax.Array) -> jax.Array:
    """The x0 with which one DDIM step (eta 0) of the student from z lands on ``z_teacher``.

    x_tilde = (z'' - (s''/s) z) / (a'' - (s''/s) a), with a, s = sqrt(abar), sqrt(1 - abar) at
    student index j and a'', s'' at the step's end (1, 0 when j = 0: x_tilde = z'').

    Args:
      student: the student's schedule; j: [B] indices into it.
      z: [B, H, W, C] the student's input x_t.
      z_teacher: [B, H, W, C] where the teacher's two steps from z end.

    Returns:
      [B, H, W, C] float32.
    """
    a = extract(student.sqrt_alphas_cumprod, j)
    s = extract(student.sqrt_one_minus_alphas_cumprod, j)
    abar_next = extract(student.alphas_cumprod_prev, j)
    ratio = jnp.sqrt(1.0 - abar_next) / s
    return (z_teacher - ratio * z) / (jnp.sqrt(abar_next) - ratio * a)


def prediction_for_x0(
    schedule: Schedule, x0: jax.Array, x_t: jax.Array, t: jax.Array, parametrization: str
) -> jax.Array:
    """The network prediction (eps, or v [ours]) whose x0_hat at (x_t, t) is ``x0``.

    The inverse of ``output_to_eps`` followed by ``predict_xstart_from_eps``.
    """
    eps = predict_eps_from_xstart(schedule, x_t, t, x0)
    return eps if parametrization == "eps" else v_target(schedule, x0, eps, t)


def teacher_steps(
    apply_fn: ApplyFn,
    params,
    teacher: Schedule,
    z: jax.Array,
    index: jax.Array,
    condition: tuple[jax.Array, jax.Array, jax.Array],
    *,
    count: int = 2,
    parametrization: str,
    identity_relative: bool = False,
    audio_guidance: float = 1.0,
    null_audio=None,
) -> jax.Array:
    """``count`` deterministic DDIM steps of the teacher from z at its schedule index ``index``.

    Each step is the sampler's own: ``guided_output`` (one pass at guidance 1, two passes
    otherwise), ``output_to_eps`` and ``ddim_step`` with eta 0; the step at index 0 returns
    the clamped x0_hat.

    Args:
      apply_fn, params: the teacher network.
      teacher: its schedule; index: [B] the index of z in it (>= count - 1).
      z: [B, H, W, 3].
      condition: (identity, motion, audio) as the sampler passes them.
      count: steps to take.
      parametrization: "eps" or "v".
      identity_relative: the network sees z relative to the identity (``network_input``).
      audio_guidance, null_audio: the teacher's guidance.

    Returns:
      [B, H, W, 3]: z after the steps.
    """
    identity, motion, audio = condition
    zeros = jnp.zeros_like(z)
    for i in range(count):
        t = index - i
        z_in = network_input(teacher, z, t, identity, identity_relative)
        out = guided_output(
            apply_fn,
            params,
            z_in,
            jnp.take(teacher.timesteps, t),
            identity,
            motion,
            audio,
            null_audio,
            audio_guidance,
        )
        out = output_to_eps(teacher, out, z_in, t, parametrization)
        z, _ = ddim_step(teacher, out, z, t, zeros, eta=0.0)
    return z


DISTILL_KEYS = ("steps", "noise", "dropout")


def distill_loss(
    params,
    teacher_params,
    model: nn.Module,
    tables: RoundTables,
    batch: dict[str, jax.Array],
    rng: jax.Array,
    *,
    parametrization: str,
    identity_relative: bool = False,
    audio_guidance: float = 1.0,
    null_audio=None,
    train: bool = True,
):
    """The student's mean distance to its teacher's two-step target over a batch.

    Each example draws a student index j uniformly from the round's chain, noises its target
    frame to the student's timestep (z = a x_0 + s eps), runs the teacher's two DDIM steps
    from z (no gradient), and compares the student's prediction with the one that
    ``x0_target`` implies.

    Args:
      params: the student's parameters (differentiated).
      teacher_params: the teacher's.
      model: the U-Net of both.
      tables: the round's schedules.
      batch: training batch ('target', 'identity', 'motion', 'audio').
      rng: the step's key (split into ``DISTILL_KEYS``).
      parametrization: the network's, "eps" or "v".
      identity_relative: the network sees z relative to the identity (``network_input``);
        the target prediction is then that of x_0 - x_Id at the shifted input.
      audio_guidance, null_audio: the teacher's guidance (the student is one pass).
      train: the student runs with dropout.

    Returns:
      (loss, metrics): ``loss`` the MSE in the prediction's space; ``step_mse`` the MSE
      between the student's own DDIM step and the teacher's two steps (state space).
    """
    keys = dict(zip(DISTILL_KEYS, jax.random.split(rng, len(DISTILL_KEYS)), strict=True))
    x_start = batch["target"]
    b = x_start.shape[0]
    condition = (batch["identity"], batch["motion"], batch["audio"])
    student = tables.student
    j = jax.random.randint(keys["steps"], (b,), 0, tables.num_student_steps)
    noise = jax.random.normal(keys["noise"], x_start.shape, jnp.float32)
    z = q_sample(student, x_start, j, noise)
    z_teacher = teacher_steps(
        UNetApply(model),
        teacher_params,
        tables.teacher,
        z,
        2 * j + 1,
        condition,
        parametrization=parametrization,
        identity_relative=identity_relative,
        audio_guidance=audio_guidance,
        null_audio=null_audio,
    )
    z_teacher = jax.lax.stop_gradient(z_teacher)
    x0 = x0_target(student, z, j, z_teacher)
    z_in = network_input(student, z, j, batch["identity"], identity_relative)
    if identity_relative:
        x0 = x0 - batch["identity"]
    target = prediction_for_x0(student, x0, z_in, j, parametrization)
    out = model.apply(
        {"params": params},
        z_in,
        jnp.take(student.timesteps, j),
        *condition,
        train=train,
        rngs={"dropout": keys["dropout"]},
    ).astype(jnp.float32)
    loss = ((out[..., : x_start.shape[-1]] - target) ** 2).mean()
    own = output_to_eps(student, jax.lax.stop_gradient(out), z_in, j, parametrization)
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


def make_distill_step(
    model: nn.Module,
    tx: optax.GradientTransformation,
    config: ml_collections.ConfigDict,
    audio_guidance: float,
    null_audio=None,
):
    """``step(state, batch, tables) -> (state, metrics)``; callers jit it with their shardings.

    Randomness comes from ``fold_in(key(config.seed), state.step)``, so a resumed run draws
    exactly what an uninterrupted one would. ``audio_guidance`` (the round's teacher scale)
    is fixed per function: two programs at most, the guided first round and the rest.
    """
    base_key = jax.random.key(config.seed)
    kw = dict(
        parametrization=config.diffusion.parametrization,
        identity_relative=bool(config.diffusion.get("identity_relative", False)),
        audio_guidance=audio_guidance,
        null_audio=null_audio,
    )

    def step(state: DistillState, batch: dict, tables: RoundTables):
        key = jax.random.fold_in(base_key, state.step)
        # The training recipe's appearance augmentations (off unless config.train asks), from
        # a key of their own as in training; the mouth box is not used beyond this.
        batch = augment.from_config(jax.random.fold_in(key, AUGMENT_STREAM), batch, config.train)
        grad_fn = jax.value_and_grad(distill_loss, has_aux=True)
        (_, metrics), grads = grad_fn(state.params, state.teacher_params, model, tables, batch, key, **kw)
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


LR_SCHEDULES = ("constant", "linear")


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


# ---------------------------------------------------------------------------------------------
# Configs, the run and its export.


def distill_config(
    config: ml_collections.ConfigDict, teacher_config: ml_collections.ConfigDict, student_steps=None
) -> ml_collections.ConfigDict:
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
    if student_steps is not None:
        merged.distill.student_steps = int(student_steps)
    return merged


def make_plan(config: ml_collections.ConfigDict) -> Plan:
    """The plan of a run config (``distill_config``): n0, rounds, the distilled guidance."""
    n = int(config.distill.student_steps)
    num_timesteps = int(config.diffusion.num_timesteps)
    guidance = float(config.distill.audio_guidance)
    if guidance < 0:
        guidance = float(config.sampling.audio_guidance)
    own = tuple(int(t) for t in config.sampling.get("timesteps", ()))
    if own and len(own) == int(config.sampling.steps):
        # A teacher with timesteps of its own (a distilled student) is distilled on them.
        return Plan.create(num_timesteps, len(own), n, int(config.distill.steps_per_round), guidance, own)
    first = int(config.distill.teacher_steps) or start_steps(int(config.sampling.steps), n, num_timesteps)
    return Plan.create(num_timesteps, first, n, int(config.distill.steps_per_round), guidance)


def student_export_config(config: ml_collections.ConfigDict, plan: Plan) -> ml_collections.ConfigDict:
    """The config the student is exported with: DDIM at ``distill.student_eta`` (0: as trained),
    guidance off, on its own timesteps."""
    out = ml_collections.ConfigDict(config.to_dict())
    out.sampling.steps = len(plan.grids[-1])
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


class DistillLogger(monitor.MetricLogger):
    """Training's logger with the distillation's console line and metrics."""

    def log_round(self, step: int, round_index: int, plan: Plan, metrics: dict, progress: Progress) -> None:
        """One console line (round, loss, steps/s, ETA), TensorBoard scalars and a metrics.csv row."""
        if not self.enabled:
            return
        tail = progress.speed()  # the rate and ETA, "compiling" before there is a rate
        logging.info(
            "step %d | round %d/%d (%d -> %d steps) | loss %.5f step_mse %.5f | grad %.3f%s",
            step,
            round_index + 1,
            plan.num_rounds,
            len(plan.grids[round_index]),
            len(plan.grids[round_index + 1]),
            metrics["loss"],
            metrics["step_mse"],
            metrics["grad_norm"],
            f" | {tail}" if tail else "",
        )
        rate = progress.rate if progress.has_rate else math.nan
        row = dict(metrics, round=round_index + 1, steps_per_s=rate, eta_s=progress.eta_s)
        self.scalars("distill", row, step)  # the rate and ETA are NaN (unknown) before a second step
        new = not os.path.exists(self.csv_path)
        with open(self.csv_path, "a", encoding="utf-8") as f:
            if new:
                f.write(",".join(["step", *sorted(row)]) + "\n")
            f.write(",".join([str(step), *(repr(float(row[k])) for k in sorted(row))]) + "\n")


def distill(config: ml_collections.ConfigDict, teacher_dir: str, workdir: str, student_steps=None):
    """Distils the export ``teacher_dir`` into WORKDIR/export, resuming from WORKDIR's checkpoints.

    Args:
      config: the run's config (its train, optim, mesh, distill, seed; the network comes
        from the teacher, see ``distill_config``).
      teacher_dir: the teacher export.
      workdir: checkpoints/, metrics.csv, tensorboard/ and, at the end, export/.
      student_steps: N (default config.distill.student_steps).

    Returns:
      The final ``DistillState`` (on the mesh).

    Raises:
      DistillError: a non-finite loss, an unusable dataset, or a workdir of another plan.
      export.ExportError: a teacher that does not load.
    """
    # The run sets its mesh as the thread's current one; the caller's comes back afterwards
    # (a caller that runs other meshes next, a test process, must not inherit it).
    with jax.set_mesh(None):
        return _distill(config, teacher_dir, workdir, student_steps)


def _distill(config: ml_collections.ConfigDict, teacher_dir: str, workdir: str, student_steps=None):
    is_main = jax.process_index() == 0
    teacher_config, teacher_params, teacher_meta = export.load_export(teacher_dir)
    config = distill_config(config, teacher_config, student_steps)
    try:
        plan = make_plan(config)
    except ValueError as e:
        raise DistillError(str(e)) from e
    os.makedirs(workdir, exist_ok=True)
    dataset_dir = prepare_data(config)
    mesh = parallel.make_mesh(config.mesh)
    jax.set_mesh(mesh)
    options = SamplingOptions.from_config(config, audio_guidance=plan.audio_guidance, sampler="ddim", eta=0.0)
    if is_main:
        logging.info(
            "distilling %s (%s, %d steps, audio guidance %g) into %d DDIM steps: %d round(s) of %d steps, "
            "mesh %s over %d devices",
            teacher_dir,
            teacher_config.sampling.sampler,
            teacher_config.sampling.steps,
            plan.audio_guidance,
            len(plan.grids[-1]),
            plan.num_rounds,
            plan.steps_per_round,
            dict(mesh.shape),
            mesh.size,
        )
        for r in plan.rounds_json():
            logging.info("round %d: %d -> %d steps", r["round"], r["teacher_steps"], r["student_steps"])

    model = factory.build_unet(config)
    tx = distill_optimizer(config)
    abstract = jax.eval_shape(lambda p: initial_state(p, tx), factory.param_shapes(config))
    shardings = parallel.tree_shardings(mesh, abstract)
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), keep=config.train.keep_checkpoints)
    data_position = None
    if ckpt.latest_step() is not None:
        targets = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
        )
        items = {PARAMS: targets.params, TEACHER_PARAMS: targets.teacher_params, OPT_STATE: targets.opt_state}
        arrays, json_items = ckpt.restore(None, items, (DATA, PLAN))
        if json_items[PLAN] != plan.to_json():
            raise DistillError(
                f"{workdir} holds a distillation of another plan ({json_items[PLAN]['grids'][0][:4]}... "
                f"{len(json_items[PLAN]['grids'][-1])} steps); use a new workdir"
            )
        state = DistillState(
            step=jnp.asarray(ckpt.latest_step(), jnp.int32),
            params=arrays[PARAMS],
            teacher_params=arrays[TEACHER_PARAMS],
            opt_state=arrays[OPT_STATE],
        )
        data_position = json_items[DATA]
        logging.info("resumed from step %d of %s", ckpt.latest_step(), ckpt.directory)
    else:
        placed = parallel.put(teacher_params, shardings.teacher_params)
        state = jax.jit(lambda p: initial_state(p, tx), out_shardings=shardings)(placed)

    try:
        batches = input_pipeline.make_train_iterator(config, state=data_position, dataset_dir=dataset_dir)
    except ValueError as e:
        raise DistillError(f"{dataset_dir}: {e}") from e

    repl = parallel.replicated(mesh)
    steps = {}

    def step_fn(guidance: float):
        if guidance not in steps:
            null = options.null_audio if guidance != 1.0 else None
            steps[guidance] = jax.jit(
                make_distill_step(model, tx, config, guidance, null),
                in_shardings=(shardings, parallel.batch_sharding(mesh), repl),
                out_shardings=(shardings, repl),
                donate_argnums=(0,),
            )
        return steps[guidance]

    new_round = jax.jit(lambda s: next_round(s, tx), out_shardings=shardings, donate_argnums=(0,))
    logger = DistillLogger(workdir, enabled=is_main)
    preemption = Preemption()
    total = plan.total_steps
    step = int(jax.device_get(state.step))
    last_saved = step if data_position is not None else None
    progress = Progress(total, "steps", label="distillation", done=step, every_s=float("inf"))
    json_config = config_json(config)

    def save(force=False):
        nonlocal last_saved
        saved = ckpt.save(
            step,
            {PARAMS: state.params, TEACHER_PARAMS: state.teacher_params, OPT_STATE: state.opt_state},
            {CONFIG: json_config, DATA: batches.get_state(), PLAN: plan.to_json()},
            force=force,
        )
        if saved:
            last_saved = step

    tables = {}
    while step < total:
        r = plan.round_of(step)
        if step > 0 and step % plan.steps_per_round == 0:
            # Checkpoints are saved before this, so a resumed run takes it exactly once too.
            state = new_round(state)
            if is_main:
                logging.info("round %d of %d starts", r + 1, plan.num_rounds)
        if r not in tables:
            round_r = round_tables(plan, r, options)
            tables[r] = parallel.put(round_r, jax.tree.map(lambda _: repl, round_r))
        local = next(batches)
        batch = parallel.global_batch({k: local[k] for k in MODEL_INPUTS}, mesh)
        state, metrics = step_fn(plan.guidance(r))(state, batch, tables[r])
        step += 1
        progress.update()
        end_of_round = step % plan.steps_per_round == 0
        if step % config.train.log_every == 0 or end_of_round:
            metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
            if not all(np.isfinite(v) for v in metrics.values()):
                ckpt.wait()
                where = f"step {last_saved} in {ckpt.directory}" if last_saved is not None else "none"
                raise DistillError(
                    f"non-finite loss at step {step} ({metrics}); last good checkpoint: {where}"
                )
            logger.log_round(step, r, plan, metrics, progress)
        if step % config.train.checkpoint_every == 0 or end_of_round:
            save(force=True)
        if preemption.should_stop(step):
            if last_saved != step:
                save(force=True)
            ckpt.wait()
            logging.warning("preempted: saved step %d; rerun the same command to continue", step)
            break
    else:
        if last_saved != step:
            save(force=True)
        write_student_export(workdir, state, config, plan, teacher_dir, teacher_meta)
    ckpt.wait()
    batches.close()
    logger.close()
    return state


def write_student_export(workdir: str, state: DistillState, config, plan: Plan, teacher_dir, teacher_meta):
    """WORKDIR/export: the student's parameters, sampling defaults and what it was distilled from."""
    provenance = dict(
        step=int(jax.device_get(state.step)),
        source_workdir=os.path.abspath(workdir),
        distillation=dict(
            method="progressive",
            teacher=teacher_summary(teacher_dir, teacher_meta),
            student_steps=len(plan.grids[-1]),
            first_teacher_steps=len(plan.grids[0]),
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
        state.params,
        student_export_config(config, plan),
        weights="raw",
        provenance=provenance,
    )
    logging.info("wrote the student export %s (%d DDIM steps, one pass each)", path, len(plan.grids[-1]))
