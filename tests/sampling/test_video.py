"""The video sampler: scan equals loop, seeds, devices, compilation, and golden frames."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType

from configs import test as test_config
from dheads_jax import sampling
from dheads_jax.models.factory import build_unet, dummy_inputs
from dheads_jax.sampling import SamplingOptions, VideoBatch
from tests import helpers
from tests.helpers import random_params
from tests.reference_sampler import sample_frame_reference

NUM_STEPS = 6


def make_options(config=None, **changes) -> SamplingOptions:
    """The test config's options with NUM_STEPS steps and ``changes``."""
    options = SamplingOptions.from_config(config or test_config.get_config(), steps=NUM_STEPS)
    return options.replace(**changes)


@pytest.fixture(scope="module")
def setup():
    config = test_config.get_config()
    model = build_unet(config)
    params = random_params(config)
    schedule = make_options(config).make_schedule()
    return config, model, params, schedule


def random_inputs(config, batch, num_frames, seed=0):
    rng = np.random.default_rng(seed)
    s = config.data.image_size
    identity = rng.uniform(-1, 1, (batch, s, s, 3)).astype(np.float32)
    audio = rng.normal(size=(batch, num_frames, config.data.audio_dim)).astype(np.float32)
    return identity, audio


def test_random_network_output_is_not_trivial(setup):
    config, model, params, _ = setup
    d = dummy_inputs(config, 2)
    identity, audio = random_inputs(config, 2, 5)
    motion = np.repeat(identity[:, None], 2, axis=1)
    out = sampling.UNetApply(model)(params, identity, jnp.array([3, 700]), identity, motion, audio)
    assert out.shape == d["x_t"].shape[:3] + (6,)
    assert float(jnp.std(out[..., :3])) > 0.05
    assert float(jnp.std(out[0] - out[1])) > 0.05


@pytest.mark.parametrize("sampler,eta", [("ddpm", 0.0), ("ddim", 0.0), ("ddim", 0.7)])
def test_scan_equals_python_loop_step_by_step(setup, sampler, eta):
    config, model, params, schedule = setup
    apply_fn = sampling.UNetApply(model)
    identity, audio = random_inputs(config, 2, 5)
    motion = np.repeat(identity[:, None], 2, axis=1) * 0.5
    keys = sampling.frame_keys(jax.random.key(42), jnp.array([3, 7]), 11)

    options = make_options(sampler=sampler, eta=eta)
    run = jax.jit(
        lambda p, k, i, m, a: sampling.sample_frame(
            apply_fn, p, schedule, k, (i, m, a), options, return_trajectory=True
        )
    )
    x0, trajectory = run(params, keys, identity, motion, audio)
    ref_x0, ref_trajectory = sample_frame_reference(
        jax.jit(apply_fn), params, schedule, keys, identity, motion, audio, sampler=sampler, eta=eta
    )
    assert trajectory.shape == (NUM_STEPS, 2, 32, 32, 3)
    assert len(ref_trajectory) == NUM_STEPS
    np.testing.assert_array_equal(x0, trajectory[-1])
    # Free-running: the two chains agree up to float32 rounding, which the clamp of
    # x0_hat and DDIM's eps recomputation can amplify at a few pixels.
    np.testing.assert_allclose(x0, ref_x0, atol=1e-3, rtol=0)
    assert float(jnp.abs(x0 - ref_x0).mean()) < 1e-5
    # Step by step: each reference step starts from the scan's previous state.
    _, forced = sample_frame_reference(
        jax.jit(apply_fn),
        params,
        schedule,
        keys,
        identity,
        motion,
        audio,
        sampler=sampler,
        eta=eta,
        step_inputs=trajectory,
    )
    # The first step (t = 999) computes x0_hat = 2.0e4 x_t - 2.0e4 eps in float32: its
    # rounding, about 1e-4 after the step, is inherent; every later step agrees to 1e-6.
    np.testing.assert_allclose(trajectory[0], forced[0], atol=3e-4, rtol=0)
    for i in range(1, NUM_STEPS):
        np.testing.assert_allclose(trajectory[i], forced[i], atol=1e-6, rtol=0)
    # The last step returns the clamped x0_hat; the chain did move.
    assert float(jnp.abs(x0).max()) <= 1.0
    assert float(jnp.std(trajectory[0] - x0)) > 0.1


def test_samplers_and_keys_change_the_result(setup):
    config, model, params, schedule = setup
    apply_fn = sampling.UNetApply(model)
    identity, audio = random_inputs(config, 1, 5)
    motion = np.repeat(identity[:, None], 2, axis=1)

    def run(sampler, eta, frame):
        keys = sampling.frame_keys(jax.random.key(0), jnp.array([0]), frame)
        return sample_frame_reference(
            jax.jit(apply_fn), params, schedule, keys, identity, motion, audio, sampler=sampler, eta=eta
        )[0]

    ddpm0, ddpm1, ddim0 = run("ddpm", 0.0, 0), run("ddpm", 0.0, 1), run("ddim", 0.0, 0)
    assert float(jnp.abs(ddpm0 - ddpm1).max()) > 0.1
    assert float(jnp.abs(ddpm0 - ddim0).max()) > 0.01
    with pytest.raises(ValueError, match="unknown sampler"):
        run("euler", 0.0, 0)


def test_network_receives_original_timesteps(setup):
    config, _, params, schedule = setup
    seen = []

    def recording_apply_fn(params, x_t, timesteps, identity, motion, audio):
        seen.append(np.asarray(timesteps))
        return jnp.zeros(x_t.shape[:3] + (6,), jnp.float32)

    identity, audio = random_inputs(config, 2, 5)
    keys = sampling.frame_keys(jax.random.key(0), jnp.arange(2), 0)
    sample_frame_reference(
        recording_apply_fn, params, schedule, keys, identity, np.repeat(identity[:, None], 2, 1), audio
    )
    # space_timesteps(1000, 6): stride 999/5 = 199.8 accumulated and rounded.
    assert [int(t[0]) for t in seen] == [999, 799, 599, 400, 200, 0]
    assert all((t == t[0]).all() for t in seen)


def manual_video(setup, identity, audio, key, lengths, video_ids, every, previous, shared_noise=False):
    """sample_videos rebuilt from the reference chain and the pure frame rules.

    The motion buffer is fed with ``previous`` (sample_videos' own frames) rather than
    this loop's output: the chain feeds back through the motion frames, so float32
    rounding differences between two code paths would otherwise grow frame by frame.
    """
    config, model, params, schedule = setup
    apply_fn = jax.jit(sampling.UNetApply(model))
    motion = sampling.init_motion_buffer(identity, 2, grayscale=False)
    frames = []
    for k in range(int(max(lengths))):
        motion = sampling.stabilize_motion_buffer(motion, identity, k, every, grayscale=False)
        window = np.stack(
            [
                audio[v, np.asarray(sampling.audio_window_indices(k, lengths[v], 2))]
                for v in range(len(lengths))
            ]
        )
        f = 0 if shared_noise else k
        keys = jnp.stack([jax.random.fold_in(jax.random.fold_in(key, v), f) for v in video_ids])
        x0, _ = sample_frame_reference(apply_fn, params, schedule, keys, identity, motion, window)
        frames.append(np.asarray(x0))
        motion = sampling.push_motion_frame(motion, previous[:, k], grayscale=False)
    return np.stack(frames, axis=1)


def test_sample_videos_equals_manual_loop(setup):
    config, model, params, schedule = setup
    identity, audio = random_inputs(config, 2, 5, seed=3)
    lengths, video_ids, key = [5, 3], [4, 9], jax.random.key(7)
    got = sampling.sample_videos(
        sampling.UNetApply(model),
        params,
        make_options(stabilize_every=2),
        VideoBatch.create(identity, audio, lengths, video_ids),
        key,
    )
    expected = manual_video(setup, identity, audio, key, lengths, video_ids, every=2, previous=got)
    assert got.shape == (2, 5, 32, 32, 3)
    np.testing.assert_allclose(got, expected, atol=5e-5, rtol=0)
    # Frames differ from each other and from the identity.
    assert float(np.abs(got[:, 1] - got[:, 0]).max()) > 0.1
    assert float(np.abs(got[:, 0] - identity).max()) > 0.1


def test_shared_noise_draws_every_frame_from_frame_zeros_key(setup):
    config, model, params, schedule = setup
    identity, audio = random_inputs(config, 2, 4, seed=4)
    lengths, video_ids, key = [4, 2], [1, 6], jax.random.key(3)
    videos = VideoBatch.create(identity, audio, lengths, video_ids)
    run = lambda **kw: sampling.sample_videos(  # noqa: E731
        sampling.UNetApply(model), params, make_options(**kw), videos, key
    )
    shared = run(shared_noise=True)
    expected = manual_video(
        setup, identity, audio, key, lengths, video_ids, every=0, previous=shared, shared_noise=True
    )
    np.testing.assert_allclose(shared, expected, atol=5e-5, rtol=0)
    # Frame 0 is the same either way; later frames differ because their noise does.
    fresh = run()
    np.testing.assert_allclose(shared[:, 0], fresh[:, 0], atol=1e-6)
    assert float(np.abs(shared[:, 1:] - fresh[:, 1:]).max()) > 0.05


def test_same_seed_same_video_across_batch_and_devices(setup):
    config, model, params, schedule = setup
    apply_fn = sampling.UNetApply(model)
    identity, audio = random_inputs(config, 4, 3, seed=5)
    key = jax.random.key(123)
    options = make_options(stabilize_every=2)
    lengths = [3, 2, 3, 1]
    videos = VideoBatch.create(identity, audio, lengths)

    batch4 = sampling.sample_videos(apply_fn, params, options, videos, key)
    mesh8 = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))
    assert len(jax.devices()) == 8
    # The frame generator on 8 devices, the caller placing the inputs.
    placed, motion, placed_params, placed_schedule = sampling.place(
        videos.padded(8), options, params, options.make_schedule(), mesh8
    )
    assert placed.identity.sharding.spec[0] is not None
    step = lambda *args: sampling.jitted_frame_step(apply_fn, options, *args)  # noqa: E731
    with jax.set_mesh(mesh8):
        streamed = dict(sampling.video_frames(step, placed_params, placed_schedule, key, placed, motion))
    assert sorted(streamed) == [0, 1, 2]
    batch4_8dev = np.stack([np.asarray(streamed[k])[:4] for k in range(3)], axis=1)
    np.testing.assert_allclose(batch4_8dev, batch4, atol=2e-5, rtol=0)
    np.testing.assert_allclose(
        sampling.sample_videos(apply_fn, params, options, videos, key, mesh=mesh8), batch4, atol=2e-5, rtol=0
    )

    for v in range(4):
        single = sampling.sample_videos(
            apply_fn,
            params,
            options,
            VideoBatch.create(identity[v : v + 1], audio[v : v + 1], lengths[v : v + 1], [v]),
            key,
        )
        n = lengths[v]
        np.testing.assert_allclose(single[0], batch4[v, :n], atol=2e-5, rtol=0)
    # Different videos get different noise.
    assert float(np.abs(batch4[0, 0] - batch4[2, 0]).max()) > 0.1


def test_no_recompilation_across_frames_or_calls(setup):
    config, model, params, schedule = setup
    base = sampling.UNetApply(model)
    traces = []

    def counting_apply_fn(*args):
        traces.append(1)
        return base(*args)

    identity, audio = random_inputs(config, 2, 6, seed=1)
    videos = VideoBatch.create(identity, audio)
    options = make_options(stabilize_every=2)
    video = sampling.sample_videos(counting_apply_fn, params, options, videos, jax.random.key(0))
    assert video.shape == (2, 6, 32, 32, 3)
    assert len(traces) == 1
    # A second call with the same shapes and an equal options value reuses the compiled step.
    sampling.sample_videos(
        counting_apply_fn, params, make_options(stabilize_every=2), videos, jax.random.key(1)
    )
    assert len(traces) == 1
    # Other options are another cache entry.
    sampling.sample_videos(
        counting_apply_fn, params, make_options(stabilize_every=3), videos, jax.random.key(1)
    )
    assert len(traces) == 2


def test_video_batch_rejects_bad_lengths():
    identity, audio = random_inputs(test_config.get_config(), 2, 4)
    with pytest.raises(ValueError, match="lengths"):
        VideoBatch.create(identity, audio, lengths=[5, 2])
    with pytest.raises(ValueError, match="video_ids"):
        VideoBatch.create(identity, audio, video_ids=[0, 1, 2])
    with pytest.raises(ValueError, match="identity"):
        VideoBatch.create(identity[:1], audio)


def test_audio_guidance_changes_a_video_only_through_the_audio(setup):
    config, model, params, schedule = setup
    apply_fn = sampling.UNetApply(model)
    identity, audio = random_inputs(config, 1, 3, seed=11)
    run = lambda a, **kw: sampling.sample_videos(  # noqa: E731
        apply_fn,
        params,
        make_options(sampler="ddim", **kw),
        VideoBatch.create(identity, a),
        jax.random.key(2),
    )
    plain = run(audio)
    # Guidance towards the same audio as the null one is no guidance at all.
    same = np.full((1, 3, audio.shape[-1]), 0.3, np.float32)
    np.testing.assert_allclose(
        run(same),
        run(same, audio_guidance=3.0, null_audio=tuple(float(v) for v in same[0, 0])),
        atol=1e-5,
    )
    guided = run(audio, audio_guidance=3.0, null_audio=(0.0,) * audio.shape[-1])
    assert float(np.abs(guided - plain).max()) > 0.05
    with pytest.raises(ValueError, match="needs null_audio"):
        run(audio, audio_guidance=2.0)
    with pytest.raises(ValueError, match="null_audio"):
        run(audio, audio_guidance=2.0, null_audio=(0.0, 0.0, 0.0))


@pytest.fixture(scope="module")
def golden_network():
    """The golden inputs: random network (seed 3), two videos of 5 and 3 frames, key 7."""
    config = test_config.get_config()
    rng = np.random.default_rng(11)
    identity = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    audio = rng.normal(size=(2, 5, 8)).astype(np.float32)
    videos = VideoBatch.create(identity, audio, lengths=[5, 3], video_ids=[0, 4])
    return config, sampling.UNetApply(build_unet(config)), random_params(config, seed=3), videos


def test_official_sampler_frames_match_the_golden_frames(golden_network):
    """The frames of the first sampler (before the inference redesign), within XLA's rounding."""
    config, apply_fn, params, videos = golden_network
    options = SamplingOptions.from_config(config, steps=6)
    assert (options.sampler, options.audio_guidance, options.shared_noise) == ("ddpm", 1.0, False)
    frames = sampling.sample_videos(apply_fn, params, options, videos, jax.random.key(7))
    assert frames.dtype == np.float32 and frames.shape == (2, 5, 32, 32, 3)
    helpers.assert_matches_golden("official_frames", frames)


def test_demo_sampler_frames_match_the_golden_frames(golden_network):
    """v prediction, DDIM, audio guidance, shared noise and stabilize: the demo's sampler."""
    config, apply_fn, params, videos = golden_network
    config = config.copy_and_resolve_references()
    config.diffusion.parametrization = "v"
    options = SamplingOptions.from_config(
        config,
        steps=4,
        sampler="ddim",
        audio_guidance=5.0,
        shared_noise=True,
        stabilize=True,
        stabilize_every=2,
    )
    frames = sampling.sample_videos(apply_fn, params, options, videos, jax.random.key(7))
    helpers.assert_matches_golden("demo_frames", frames)
