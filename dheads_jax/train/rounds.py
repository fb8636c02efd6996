"""The rounds of a progressive distillation: which chains each round's teacher and student
run on (docs/method.md, section 9), and the per-round tables a compiled step reads."""

from __future__ import annotations

import dataclasses
import math

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections

from dheads_jax.diffusion import Schedule, space_timesteps
from dheads_jax.sampling import SamplingOptions


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
    def first_teacher_steps(self) -> int:
        """n0, the first teacher's DDIM steps."""
        return len(self.grids[0])

    @property
    def student_steps(self) -> int:
        """N, the final student's DDIM steps."""
        return len(self.grids[-1])

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


def make_plan(config: ml_collections.ConfigDict) -> Plan:
    """The plan of a run config (``distill.distill_config``): n0, rounds, the distilled guidance.

    The first teacher's steps are ``distill.teacher_steps``, or (None) those of ``start_steps``;
    its guidance ``distill.audio_guidance``, or (None) the export's ``sampling.audio_guidance``.
    """
    n = int(config.distill.student_steps)
    num_timesteps = int(config.diffusion.num_timesteps)
    d = config.distill
    guidance = float(config.sampling.audio_guidance if d.audio_guidance is None else d.audio_guidance)
    own = tuple(int(t) for t in config.sampling.timesteps)
    if own and len(own) == int(config.sampling.steps):
        # A teacher with timesteps of its own (a distilled student) is distilled on them.
        return Plan.create(num_timesteps, len(own), n, int(d.steps_per_round), guidance, own)
    first = d.teacher_steps or start_steps(int(config.sampling.steps), n, num_timesteps)
    return Plan.create(num_timesteps, int(first), n, int(d.steps_per_round), guidance)
