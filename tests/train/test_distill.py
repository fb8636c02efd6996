"""Progressive distillation: the two-step target, a round's progress, resume, the student export."""

import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dheads_jax import export, input_pipeline, media
from dheads_jax.checkpointing import Checkpointer
from dheads_jax.diffusion import ddim_step, distillation, output_to_eps, space_timesteps
from dheads_jax.diffusion.gaussian import extract
from dheads_jax.diffusion.schedule import cosine_betas
from dheads_jax.models import factory
from dheads_jax.sampling import SamplingOptions
from dheads_jax.train import distill, rounds
from tests import helpers

TEACHER = helpers.OLD_EXPORT  # 4 DDIM steps, audio guidance 5, v
T = 1000


def chain_options(parametrization, steps=8):
    return SamplingOptions(
        sampler="ddim",
        steps=steps,
        eta=0.0,
        parametrization=parametrization,
        audio_guidance=1.0,
        null_audio=None,
        shared_noise=False,
        stabilize_every=0,
        motion_frames=2,
        audio_context=2,
        grayscale=False,
        schedule="cosine",
        num_timesteps=T,
    )


FULL_ABAR = np.cumprod(1.0 - cosine_betas(T))  # float64


def analytic_teacher(parametrization, fixed_x0=None):
    """A denoiser whose x0_hat is ``fixed_x0`` or a nonlinear function of (x_t, t, audio)."""

    def apply_fn(params, x_t, timesteps, identity, motion, audio):
        del params, motion
        if fixed_x0 is not None:
            x0 = jnp.broadcast_to(fixed_x0, x_t.shape)
        else:
            level = (timesteps.astype(x_t.dtype) / T).reshape(-1, 1, 1, 1)
            x0 = (
                1.3
                * jnp.tanh(1.5 * x_t + 0.4 * identity + audio.mean((1, 2))[:, None, None, None])
                * (1 - level)
            )
        abar = extract(jnp.asarray(FULL_ABAR, x_t.dtype), timesteps)
        a, s = jnp.sqrt(abar), jnp.sqrt(1 - abar)
        eps = (x_t - a * x0) / s
        pred = eps if parametrization == "eps" else a * eps - s * x0
        return jnp.concatenate([pred, jnp.zeros_like(pred)], -1)

    return apply_fn


def consistent(schedule, dtype):
    """In float64: the schedule's DDIM coefficients recomputed from the float64 abar of its timesteps.

    The float32 arrays are rounded one by one (a^2 + s^2 is not 1, the same timestep's abar of
    two chains may differ in the last bit); recomputed, the identities hold to float64 rounding.
    """
    if dtype == jnp.float32:
        return schedule
    abar = jnp.asarray(FULL_ABAR[np.asarray(schedule.timesteps)], dtype)
    return schedule.replace(
        alphas_cumprod=abar,
        alphas_cumprod_prev=jnp.concatenate([jnp.ones(1, dtype), abar[:-1]]),
        sqrt_alphas_cumprod=jnp.sqrt(abar),
        sqrt_one_minus_alphas_cumprod=jnp.sqrt(1 - abar),
        sqrt_recip_alphas_cumprod=jnp.sqrt(1 / abar),
        sqrt_recipm1_alphas_cumprod=jnp.sqrt(1 / abar - 1),
    )


def two_steps_against_one(parametrization, fixed, dtype):
    """(teacher's two DDIM steps, the student's one step onto x_tilde, x_tilde, fixed x0) for every j."""
    plan = rounds.Plan.create(T, 8, 4, steps_per_round=1, guidance=1.0)
    assert plan.grids[0] == tuple(space_timesteps(T, 8)) and plan.grids[1] == plan.grids[0][1::2]
    options = chain_options(parametrization)
    tables = rounds.round_tables(plan, 0, options)
    # The schedule the student's export samples with (its own timesteps, unpadded).
    student = options.replace(steps=4, timesteps=plan.grids[1]).make_schedule()
    np.testing.assert_array_equal(student.timesteps, tables.student.timesteps[:4])
    np.testing.assert_array_equal(student.alphas_cumprod, tables.teacher.alphas_cumprod[1::2][:4])
    student = consistent(student, dtype)

    rng = np.random.default_rng(0)
    j = jnp.arange(4, dtype=jnp.int32)  # every student step, the last one (to x_0) included
    z = jnp.asarray(rng.normal(size=(4, 6, 6, 3)), dtype)
    identity = jnp.asarray(rng.uniform(-1, 1, (4, 6, 6, 3)), dtype)
    audio = jnp.asarray(rng.normal(size=(4, 5, 2)), dtype)
    fixed_x0 = jnp.asarray(rng.uniform(-0.9, 0.9, (6, 6, 3)), dtype) if fixed else None
    apply_fn = analytic_teacher(parametrization, fixed_x0)

    # The teacher's two DDIM steps, written out here with the sampler's own step.
    teacher, expected = consistent(tables.teacher, dtype), z
    for i in (2 * j + 1, 2 * j):
        out = apply_fn(None, expected, jnp.take(teacher.timesteps, i), identity, None, audio)
        out = output_to_eps(teacher, out, expected, i, parametrization)
        expected, _ = ddim_step(teacher, out, expected, i, 0)
    got = distillation.teacher_ddim_steps(
        apply_fn, None, teacher, z, 2 * j + 1, (identity, None, audio), chain_options(parametrization)
    )
    np.testing.assert_allclose(got, expected, atol=1e-6)

    x_tilde = distillation.x0_target(student, z, j, expected)
    pred = distillation.prediction_for_x0(student, x_tilde, z, j, parametrization)
    out = output_to_eps(student, jnp.concatenate([pred, jnp.zeros_like(pred)], -1), z, j, parametrization)
    one_step, _ = ddim_step(student, out, z, j, jnp.zeros_like(z))
    return expected, one_step, x_tilde, fixed_x0


@pytest.mark.parametrize("parametrization", ["eps", "v"])
@pytest.mark.parametrize("fixed", [False, True])
def test_one_student_step_onto_the_target_is_the_teachers_two_steps(parametrization, fixed):
    # In float64 the identity is exact to rounding for both parametrizations. (In float32 an
    # eps network's top step, abar = 2.4e-9, amplifies rounding by s / a = 2e4.)
    with jax.enable_x64(True):
        expected, one_step, x_tilde, fixed_x0 = two_steps_against_one(parametrization, fixed, jnp.float64)
        np.testing.assert_allclose(one_step, expected, atol=1e-6)
        assert float(jnp.abs(x_tilde).max()) <= 1.0 + 1e-6  # a convex combination of clamped x0s
        np.testing.assert_array_equal(x_tilde[0], expected[0])  # last step: the teacher's x_0 itself
        if fixed:
            np.testing.assert_allclose(x_tilde, jnp.broadcast_to(fixed_x0, x_tilde.shape), atol=1e-6)
    if parametrization == "v":  # what training computes: float32
        expected, one_step, _, _ = two_steps_against_one(parametrization, fixed, jnp.float32)
        np.testing.assert_allclose(one_step[:3], expected[:3], atol=2e-5)
        # The top step (abar = 2.4e-9): the sampler's own x0 = x_t / a - (s / a) eps cancels
        # two terms of 2e4 in float32, for the teacher's steps as for the student's.
        np.testing.assert_allclose(one_step[3], expected[3], atol=5e-3)


@pytest.mark.parametrize("interval", [(), (0.5, 1.0)])
def test_the_teacher_target_is_the_guided_output(interval):
    """The teacher's two steps use the sampler's guided output; with a guidance_interval
    [ours], each example is guided only on its steps inside it (example 0 is at the top of
    the chain, example 1 at its bottom, so one batch holds both)."""
    options = chain_options("v", 4)
    teacher = options.make_schedule()
    apply_fn = analytic_teacher("v")
    rng = np.random.default_rng(1)
    z = jnp.asarray(rng.normal(size=(2, 4, 4, 3)), jnp.float32)
    identity = jnp.asarray(rng.uniform(-1, 1, (2, 4, 4, 3)), jnp.float32)
    audio = jnp.asarray(rng.normal(size=(2, 5, 2)), jnp.float32)
    motion = jnp.zeros((2, 2, 4, 4, 3), jnp.float32)
    null = (0.3, -0.2)
    index = jnp.asarray([3, 1], jnp.int32)

    def guided(x, t, a):
        cond = apply_fn(None, x, t, identity, None, a)
        uncond = apply_fn(None, x, t, identity, None, jnp.broadcast_to(jnp.asarray(null), a.shape))
        scale = jnp.where((t >= 500) | (not interval), 4.0, 1.0)[:, None, None, None]
        return cond + (scale - 1.0) * (cond - uncond)

    expected = z
    for i in (index, index - 1):
        out = output_to_eps(
            teacher, guided(expected, jnp.take(teacher.timesteps, i), audio), expected, i, "v"
        )
        expected, _ = ddim_step(teacher, out, expected, i, 0)
    got = distillation.teacher_ddim_steps(
        apply_fn,
        None,
        teacher,
        z,
        index,
        (identity, motion, audio),
        options.replace(audio_guidance=4.0, null_audio=null, guidance_interval=interval),
    )
    np.testing.assert_allclose(got, expected, atol=1e-5)
    if interval:
        assert list(np.asarray(teacher.timesteps)[[3, 2, 1, 0]] >= 500) == [True, True, False, False]


def test_the_plan_halves_from_the_nearest_teacher_step_count():
    assert rounds.start_steps(100, 4, 1000) == 128 and rounds.start_steps(10, 4, 1000) == 8
    assert rounds.start_steps(4, 4, 1000) == 8  # at least one round
    assert rounds.start_steps(4, 1, 1000) == 4
    plan = rounds.Plan.create(T, 16, 4, steps_per_round=10, guidance=5.0)
    assert [len(g) for g in plan.grids] == [16, 8, 4] and plan.total_steps == 20
    assert plan.grids[-1][-1] == T - 1  # every student starts from pure noise
    assert [plan.guidance(r) for r in range(2)] == [5.0, 1.0] and plan.round_of(19) == 1
    with pytest.raises(ValueError, match="2\\^k"):
        rounds.Plan.create(T, 12, 4, steps_per_round=1, guidance=1.0)


def teacher_run_config(**distill_fields):
    teacher_config, _, _ = export.load_export(TEACHER)
    config = distill.distill_config(helpers.tiny_config(), teacher_config)
    config.distill.update(distill_fields)
    return config


@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_the_round_lr_is_constant_or_falls_linearly_to_zero(schedule):
    config = teacher_run_config(lr=1e-3, steps_per_round=4, lr_schedule=schedule)
    config.optim.eps = 1e-12
    tx = distill.distill_optimizer(config)
    params = {"w": jnp.zeros(3)}
    grads = {"w": jnp.full(3, 0.25)}  # a constant gradient: every Adam update is -lr_k exactly
    moves = []
    for _ in range(2):  # two rounds: each starts from a fresh optimizer state (next_round)
        state = tx.init(params)
        for _ in range(4):
            updates, state = tx.update(grads, state, params)
            moves.append(-float(updates["w"][0]))
    one_round = [1e-3] * 4 if schedule == "constant" else [1e-3, 7.5e-4, 5e-4, 2.5e-4]
    np.testing.assert_allclose(moves, one_round * 2, rtol=1e-4)  # float32 bias correction


def test_an_unknown_lr_schedule_is_refused():
    with pytest.raises(distill.DistillError, match="lr_schedule must be one of"):
        distill.distill_optimizer(teacher_run_config(lr_schedule="cosine"))


@pytest.mark.slow
def test_a_round_lowers_the_distance_to_the_two_step_target():
    config = teacher_run_config(student_steps=2, lr=5e-4)
    _, params, _ = export.load_export(TEACHER)
    plan = rounds.make_plan(config)
    assert [len(g) for g in plan.grids] == [4, 2] and plan.audio_guidance == 5.0  # guided teacher
    options = SamplingOptions.from_config(config, sampler="ddim", eta=0.0)
    device = jax.devices()[0]  # everything committed to one device: one compiled step
    tables = jax.device_put(rounds.round_tables(plan, 0, options), device)
    model = factory.build_unet(config)
    tx = distill.distill_optimizer(config)
    step = jax.jit(distill.make_distill_step(model, tx, config, options))
    frames = input_pipeline.make_train_iterator(
        config, batch_size=4, process_index=0, process_count=1, dataset_dir=helpers.prepared_samples(config)
    )
    batches = [
        jax.device_put({k: b[k] for k in ("target", "identity", "motion", "audio")}, device)
        for b in (next(frames), next(frames))
    ]

    def distance(state):
        """[loss, step_mse] before the update, at fixed keys (steps 0 and 1) on the fixed batches."""
        return np.mean(
            [
                [float(m["loss"]), float(m["step_mse"])]
                for m in (
                    step(state.replace(step=jax.device_put(jnp.int32(i), device)), b, tables)[1]
                    for i, b in enumerate(batches)
                )
            ],
            axis=0,
        )

    state = jax.device_put(distill.initial_state(params, tx), device)
    before = distance(state)
    for i in range(16):
        state, _ = step(state, batches[i % 2], tables)
    after = distance(state)
    # The regression loss (prediction space) and the student's one step against the teacher's
    # two (state space) both fall from where the copy of the teacher started.
    assert after[0] < 0.85 * before[0] and after[1] < 0.85 * before[1], (before, after)


STEPS_PER_ROUND = 2


def run_distill_in_process(workdir, stop_at=None):
    """distill.distill on the bundled clips: N = 1 from the 4-step teacher (2 rounds of 2 steps).

    On a mesh of 2 of the 8 test devices, as run_train.py's tests run. The teacher's guidance
    is set to 1 so that both rounds share one compiled step (the guided step is covered
    above). With ``stop_at`` a real SIGTERM arrives after that step.
    """
    config = helpers.tiny_config()
    config.distill.student_steps = 1
    config.distill.steps_per_round = STEPS_PER_ROUND
    config.distill.audio_guidance = 1.0
    config.distill.lr = 1e-3
    config.train.log_every = 1
    config.train.checkpoint_every = 1000

    def stop(step):
        if step == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)

    return distill.distill(config, TEACHER, str(workdir), devices=jax.devices()[:2], on_step=stop)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    helpers.prepared_samples(helpers.tiny_config())
    workdir = tmp_path_factory.mktemp("distill_reference")
    run_distill_in_process(workdir)
    return str(workdir)


def checkpoint_params(workdir):
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    step = ckpt.latest_step()
    shapes = factory.param_shapes(helpers.tiny_config())
    arrays, json_items = ckpt.restore(step, {"params": shapes, "teacher_params": shapes}, ("data",))
    return step, jax.device_get(arrays), json_items["data"]


@pytest.mark.slow
def test_sigterm_and_rerun_continue_exactly(reference_run, tmp_path):
    workdir = tmp_path / "interrupted"
    run_distill_in_process(workdir, stop_at=1)
    assert Checkpointer(str(workdir / "checkpoints")).latest_step() == 1
    assert not (workdir / "export").exists()
    run_distill_in_process(workdir)  # continues over the round boundary at step 2

    step_a, a, pos_a = checkpoint_params(reference_run)
    step_b, b, pos_b = checkpoint_params(str(workdir))
    assert step_a == step_b == 2 * STEPS_PER_ROUND and pos_a == pos_b
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    _, exported, _ = export.load_export(str(workdir / "export"))
    for x, y in zip(jax.tree.leaves(exported), jax.tree.leaves(a["params"]), strict=True):
        np.testing.assert_array_equal(x, y)
    rows = [line.split(",") for line in open(workdir / "metrics.csv").read().splitlines()]
    header = rows[0]
    steps = [int(r[0]) for r in rows[1:]]
    assert sorted(set(steps)) == list(range(1, 2 * STEPS_PER_ROUND + 1))
    assert header == ["step", "grad_norm", "loss", "step_mse"]
    assert (workdir / "loss_curve.png").exists()  # the shared logger draws distillation's curve too


@pytest.mark.slow
def test_the_student_export_samples_through_run_sample(reference_run, tmp_path):
    path = os.path.join(reference_run, "export")
    meta = export.read_meta(path)
    info = meta["provenance"]["distillation"]
    assert info["teacher"]["path"] == TEACHER and info["teacher"]["sampling"]["audio_guidance"] == 5.0
    assert (
        info["student_steps"] == 1 and info["num_rounds"] == 2 and info["steps_per_round"] == STEPS_PER_ROUND
    )
    assert info["sampler"] == "ddim" and info["eta"] == 0.0
    assert [(r["teacher_steps"], r["student_steps"]) for r in info["rounds"]] == [(4, 2), (2, 1)]
    options = SamplingOptions.from_config(export.config_from_meta(meta))
    assert (options.steps, options.sampler, options.eta, options.audio_guidance) == (1, "ddim", 0.0, 1.0)
    assert options.timesteps == (T - 1,) and options.null_audio is None  # one network pass per step

    out = tmp_path / "student.npy"
    audio = os.path.join(helpers.GRID_DIR, "swwp2s.mpg")
    proc = helpers.run_command(
        "run_sample.py",
        f"--export={path}",
        f"--id_image={os.path.join(helpers.GRID_DIR, 'bbaf2n.mpg')}",
        f"--audio={audio}",
        f"--output={out}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    frames = np.load(out)
    waveform, _ = media.read_audio(audio)  # 16 kHz: floor(seconds * 25) frames
    assert frames.shape == (len(waveform) // media.SAMPLES_PER_FRAME, 32, 32, 3) and frames.std() > 1
    assert meta["config"]["sampling"]["timesteps"] == [T - 1]


def relative_teacher(parametrization, fixed_x0):
    """The fixed-x0 teacher written for a network that sees z - sqrt(abar) x_Id: it predicts
    the difference x0 - x_Id from the shifted input."""

    def apply_fn(params, z_in, timesteps, identity, motion, audio):
        del params, motion, audio
        diff = fixed_x0 - identity
        abar = extract(jnp.asarray(FULL_ABAR, z_in.dtype), timesteps)
        a, s = jnp.sqrt(abar), jnp.sqrt(1 - abar)
        eps = (z_in - a * diff) / s
        pred = eps if parametrization == "eps" else a * eps - s * diff
        return jnp.concatenate([pred, jnp.zeros_like(pred)], -1)

    return apply_fn


@pytest.mark.parametrize("parametrization", ["eps", "v"])
def test_teacher_steps_relative_to_the_identity_equal_the_frame_space_steps(parametrization):
    """A teacher fed z - sqrt(abar) x_Id that predicts the difference from x_Id takes the same
    steps as the frame-space teacher with the same x0_hat, and ends on that x0."""
    options = chain_options(parametrization)
    teacher = options.make_schedule()
    rng = np.random.default_rng(2)
    z = jnp.asarray(rng.normal(size=(3, 4, 4, 3)), jnp.float32)
    identity = jnp.asarray(rng.uniform(-1, 1, (3, 4, 4, 3)), jnp.float32)
    audio = jnp.asarray(rng.normal(size=(3, 5, 2)), jnp.float32)
    fixed_x0 = jnp.asarray(rng.uniform(-0.9, 0.9, (4, 4, 3)), jnp.float32)
    index = jnp.asarray([5, 3, 1], jnp.int32)
    condition = (identity, None, audio)
    plain = distillation.teacher_ddim_steps(
        analytic_teacher(parametrization, fixed_x0), None, teacher, z, index, condition, options
    )
    relative = distillation.teacher_ddim_steps(
        relative_teacher(parametrization, fixed_x0), None, teacher, z, index, condition,
        options.replace(identity_relative=True),
    )  # fmt: skip
    # float32: the top steps divide by sqrt(abar), so the two roundings differ by ~2e-5.
    np.testing.assert_allclose(relative, plain, atol=1e-4)
    np.testing.assert_allclose(relative[2], jnp.broadcast_to(fixed_x0, (4, 4, 3)), atol=1e-4)
    # The same network without the shift takes other steps.
    unshifted = distillation.teacher_ddim_steps(
        relative_teacher(parametrization, fixed_x0), None, teacher, z, index, condition, options
    )
    assert float(jnp.abs(unshifted - plain).max()) > 1e-2
