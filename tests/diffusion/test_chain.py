"""The reverse chain of one frame: a perfect denoiser, audio guidance, DPM-Solver++."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import test as test_config
from dheads_jax import sampling
from dheads_jax.diffusion import build_schedule
from dheads_jax.sampling import SamplingOptions


def make_options(**changes) -> SamplingOptions:
    """The test config's sampling options with ``changes``."""
    return SamplingOptions.from_config(test_config.get_config()).replace(**changes)


@pytest.mark.parametrize("parametrization", ["eps", "v"])
@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmpp"])
@pytest.mark.parametrize("steps", [25, 100])
def test_a_perfect_denoiser_recovers_the_clean_frame(sampler, steps, parametrization):
    """With eps_hat = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t) on the ORIGINAL timestep, the
    respaced chain must end at x0: this ties the respacing, the timesteps the network sees,
    the posterior and the last (noise-free) step together. The "v" oracle returns
    v = sqrt(abar) eps - sqrt(1 - abar) x0 instead, which the sampler must turn back into eps
    with the respaced schedule's abar."""
    full = build_schedule("cosine", 1000)
    x0 = jnp.asarray(np.random.default_rng(3).uniform(-0.9, 0.9, (2, 8, 8, 3)), jnp.float32)

    def oracle(params, x_t, t, identity, motion, audio):
        abar = full.alphas_cumprod[t][:, None, None, None]
        eps = (x_t - jnp.sqrt(abar) * x0) / jnp.sqrt(1 - abar)
        pred = eps if parametrization == "eps" else jnp.sqrt(abar) * eps - jnp.sqrt(1 - abar) * x0
        return jnp.concatenate([pred, jnp.zeros_like(eps)], -1)

    keys = sampling.frame_keys(jax.random.key(0), jnp.arange(2), 0)
    options = make_options(sampler=sampler, parametrization=parametrization, steps=steps)
    out = sampling.sample_frame(
        oracle, None, options.make_schedule(), keys, (x0, x0[:, None], jnp.zeros((2, 5, 4))), options
    )
    np.testing.assert_allclose(out, x0, atol=1e-4)


@pytest.mark.parametrize("parametrization", ["eps", "v"])
@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmpp"])
def test_a_perfect_denoiser_of_the_difference_from_the_identity_recovers_the_clean_frame(
    sampler, parametrization
):
    """identity_relative: the network sees x_t - sqrt(abar_t) x_Id and predicts the difference
    d = x0 - x_Id (eps = (x_in - sqrt(abar) d) / sqrt(1 - abar), v of d); the chain, in frame
    space, must still end at x0. Without the shift the same network misses it."""
    full = build_schedule("cosine", 1000)
    rng = np.random.default_rng(4)
    x0 = jnp.asarray(rng.uniform(-0.9, 0.9, (2, 8, 8, 3)), jnp.float32)
    identity = jnp.asarray(rng.uniform(-0.9, 0.9, (2, 8, 8, 3)), jnp.float32)

    def oracle(params, x_in, t, identity, motion, audio):
        abar = full.alphas_cumprod[t][:, None, None, None]
        diff = x0 - identity
        eps = (x_in - jnp.sqrt(abar) * diff) / jnp.sqrt(1 - abar)
        pred = eps if parametrization == "eps" else jnp.sqrt(abar) * eps - jnp.sqrt(1 - abar) * diff
        return jnp.concatenate([pred, jnp.zeros_like(eps)], -1)

    keys = sampling.frame_keys(jax.random.key(0), jnp.arange(2), 0)
    condition = (identity, identity[:, None], jnp.zeros((2, 5, 4)))
    for relative in (True, False):
        options = make_options(sampler=sampler, parametrization=parametrization, steps=25)
        options = options.replace(identity_relative=relative)
        out = sampling.sample_frame(oracle, None, options.make_schedule(), keys, condition, options)
        if relative:
            np.testing.assert_allclose(out, x0, atol=1e-4)
        else:
            assert float(jnp.abs(out - x0).max()) > 0.1


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_the_identity_mask_flattens_the_identity_for_the_network_and_the_shift_alike(sampler):
    """[ours] identity_mask: the network sees the identity with the box filled with its mean
    colour, and the shift of identity_relative uses that same frame, so an oracle of the
    difference from the identity it was shown still ends at x0; the mouth in the photo never
    reaches the network."""
    full = build_schedule("cosine", 1000)
    rng = np.random.default_rng(5)
    x0 = jnp.asarray(rng.uniform(-0.9, 0.9, (2, 8, 8, 3)), jnp.float32)
    identity = jnp.asarray(rng.uniform(0.1, 0.9, (2, 8, 8, 3)), jnp.float32)
    box = (0.5, 1.0, 0.25, 0.75)  # rows 4..7, columns 2..5
    seen = []

    def oracle(params, x_in, t, shown, motion, audio):
        seen.append(shown)
        abar = full.alphas_cumprod[t][:, None, None, None]
        eps = (x_in - jnp.sqrt(abar) * (x0 - shown)) / jnp.sqrt(1 - abar)
        return jnp.concatenate([eps, jnp.zeros_like(eps)], -1)

    keys = sampling.frame_keys(jax.random.key(0), jnp.arange(2), 0)
    options = make_options(sampler=sampler, parametrization="eps", steps=25)
    options = options.replace(identity_relative=True, identity_mask=box)
    condition = (identity, identity[:, None], jnp.zeros((2, 5, 4)))
    out = sampling.sample_frame(oracle, None, options.make_schedule(), keys, condition, options)
    np.testing.assert_allclose(out, x0, atol=1e-4)
    shown = np.asarray(seen[-1])
    box_mean = np.asarray(identity)[:, 4:8, 2:6].mean(axis=(1, 2))
    np.testing.assert_allclose(
        shown[:, 4:8, 2:6], np.broadcast_to(box_mean[:, None, None], (2, 4, 4, 3)), atol=1e-6
    )
    np.testing.assert_array_equal(shown[:, :4], np.asarray(identity)[:, :4])
    # Without the mask the same oracle is shown the whole photo and the chain ends at x0 too.
    plain = sampling.sample_frame(
        oracle, None, options.make_schedule(), keys, condition, options.replace(identity_mask=())
    )
    np.testing.assert_allclose(plain, x0, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(seen[-1]), np.asarray(identity))


def test_audio_guidance_combines_the_two_passes_as_classifier_free_guidance():
    """[ours] pred = pred(null) + g (pred(audio) - pred(null)); variance from the audio pass."""
    calls = []

    def toy(params, x_t, t, identity, motion, audio):
        calls.append(x_t.shape[0])
        a = audio.mean(axis=(1, 2))[:, None, None, None]
        return jnp.concatenate([x_t * 0.5 + a, x_t * 0.0 + 2.0 * a], axis=-1)

    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 4, 3)), jnp.float32)
    audio = jnp.asarray([[[1.0, 1.0]], [[3.0, 3.0]]])
    null = jnp.asarray([-1.0, -1.0])
    args = (None, x, jnp.array([5, 5]), x, x[:, None], audio)
    plain = sampling.guided_output(toy, *args, null, 1.0)
    assert calls == [2]  # scale 1: one pass, the official output
    np.testing.assert_array_equal(plain, toy(*args))
    calls.clear()
    guided = sampling.guided_output(toy, *args, null, 4.0)
    assert calls == [4]  # both passes in one batch
    a = np.array([1.0, 3.0])[:, None, None, None]
    np.testing.assert_allclose(guided[..., :3], x * 0.5 + (-1.0 + 4.0 * (a + 1.0)), rtol=1e-6)
    np.testing.assert_allclose(guided[..., 3:], np.broadcast_to(2.0 * a, (2, 4, 4, 3)), rtol=1e-6)


def test_dpmpp_first_order_is_ddim_and_its_second_order_uses_the_previous_prediction():
    """DPM-Solver++(2M): with D = x0_hat (the first step, or x0_prev equal to x0_hat) a step
    is DDIM with eta 0; otherwise it extrapolates from the previous prediction."""
    from dheads_jax.diffusion.gaussian import ddim_step, dpmpp_2m_step, p_mean_variance

    schedule = build_schedule("cosine", 1000, 10)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 4, 4, 3)), jnp.float32)
    out = jnp.asarray(rng.normal(size=(2, 4, 4, 6)), jnp.float32)
    other = jnp.asarray(rng.uniform(-1, 1, (2, 4, 4, 3)), jnp.float32)
    for j in range(10):
        t = jnp.full((2,), j, jnp.int32)
        x0 = p_mean_variance(schedule, out, x, t)["pred_xstart"]
        ddim, _ = ddim_step(schedule, out, x, t, jnp.zeros_like(x), eta=0.0)
        first, pred = dpmpp_2m_step(schedule, out, x, t, x0)
        np.testing.assert_array_equal(pred, x0)
        np.testing.assert_allclose(first, ddim, atol=2e-5, rtol=1e-5)
        second, _ = dpmpp_2m_step(schedule, out, x, t, other)
        if j == 9:  # the chain's first step has no previous prediction: first order
            np.testing.assert_allclose(second, ddim, atol=2e-5, rtol=1e-5)
        elif j == 0:  # the last step returns the clamped x0_hat
            np.testing.assert_array_equal(second, x0)
        else:
            assert float(jnp.abs(second - ddim).max()) > 1e-3
            assert bool(jnp.all(jnp.isfinite(second)))
    with pytest.raises(ValueError, match="unknown sampler"):
        make_options(sampler="dpm")
    assert make_options(sampler="dpmpp").sampler == "dpmpp"


def test_guidance_in_a_region_leaves_the_rest_of_the_frame_unguided():
    """[ours] With a region, pred(audio) + (g - 1) w (pred(audio) - pred(null)): full guidance
    inside the box, none outside, a linear ramp across its edges."""

    def toy(params, x_t, t, identity, motion, audio):
        a = audio.mean(axis=(1, 2))[:, None, None, None]
        return jnp.concatenate([x_t * 0.5 + a, x_t * 0.0 + 2.0 * a], axis=-1)

    x = jnp.asarray(np.random.default_rng(1).normal(size=(1, 40, 40, 3)), jnp.float32)
    audio, null = jnp.asarray([[[1.0, 1.0]]]), jnp.asarray([-1.0, -1.0])
    args = (None, x, jnp.array([5]), x, x[:, None], audio)
    region = (0.5, 1.0, 0.25, 0.75)  # rows 20-39, columns 10-29; the ramp is 2 pixels wide
    everywhere = np.asarray(sampling.guided_output(toy, *args, null, 4.0))
    boxed = np.asarray(sampling.guided_output(toy, *args, null, 4.0, region))
    plain = np.asarray(toy(*args))
    np.testing.assert_allclose(boxed[0, 22:38, 12:28], everywhere[0, 22:38, 12:28], rtol=1e-6)  # inside
    np.testing.assert_array_equal(boxed[0, :19], plain[0, :19])  # above the box and its ramp
    np.testing.assert_array_equal(boxed[0, :, :9], plain[0, :, :9])
    ratio = lambda r: (
        (boxed[0, r, 20, 0] - plain[0, r, 20, 0]) / (everywhere[0, r, 20, 0] - plain[0, r, 20, 0])
    )  # noqa: E731
    np.testing.assert_allclose([ratio(19), ratio(20)], [0.25, 0.75], atol=1e-4)  # across the top edge
    np.testing.assert_array_equal(boxed[..., 3:], plain[..., 3:])  # variance from the audio pass
    weight = np.asarray(sampling.region_weight(region, 40))
    assert weight.shape == (40, 40, 1) and weight.max() == 1.0 and weight.min() == 0.0


def test_a_guidance_interval_guides_only_its_steps_and_matches_a_hand_written_chain():
    """[ours] guidance_interval (lo, hi): the steps whose timestep t has lo <= t/T <= hi take
    the guided output, the others the plain conditional pass; the scan with its lax.cond must
    equal a Python loop that picks the scale step by step, and differ from guiding every step
    and from guiding none."""
    from dheads_jax.diffusion.gaussian import ddim_step, output_to_eps

    def toy(params, x_t, t, identity, motion, audio):
        a = audio.mean(axis=(1, 2))[:, None, None, None]
        level = (t.astype(jnp.float32) / 1000.0)[:, None, None, None] * jnp.asarray([1.0, -0.5, 2.0])
        return jnp.concatenate([0.5 * x_t + level * a + 0.1 * identity, jnp.zeros_like(x_t)], axis=-1)

    rng = np.random.default_rng(6)
    identity = jnp.asarray(rng.uniform(-0.9, 0.9, (2, 8, 8, 3)), jnp.float32)
    audio = jnp.asarray(rng.normal(size=(2, 5, 4)), jnp.float32)
    condition = (identity, identity[:, None], audio)
    keys = sampling.frame_keys(jax.random.key(1), jnp.arange(2), 0)
    options = make_options(sampler="ddim", eta=0.0, parametrization="eps", steps=10)
    options = options.replace(
        audio_guidance=4.0, null_audio=(-1.0, 0.5, 0.0, 2.0), guidance_interval=(0.4, 1.0)
    )
    schedule = options.make_schedule()
    timesteps = np.asarray(schedule.timesteps)
    guided = np.asarray(sampling.guided_steps(schedule.timesteps, (0.4, 1.0), 1000))
    np.testing.assert_array_equal(guided, timesteps >= 400)
    assert 0 < guided.sum() < 10

    x = sampling.step_noise(keys, 10, (8, 8, 3))
    for j in range(9, -1, -1):
        t_index = jnp.full((2,), j, jnp.int32)
        t = jnp.full((2,), timesteps[j], jnp.int32)
        scale = 4.0 if timesteps[j] >= 400 else 1.0
        out = sampling.guided_output(
            toy, None, x, t, identity, identity[:, None], audio, options.null_audio, scale
        )
        x, _ = ddim_step(
            schedule, output_to_eps(schedule, out, x, t_index, "eps"), x, t_index, jnp.zeros_like(x), 0.0
        )
    chain = sampling.sample_frame(toy, None, schedule, keys, condition, options)
    np.testing.assert_allclose(chain, x, atol=1e-5)
    every = sampling.sample_frame(toy, None, schedule, keys, condition, options.replace(guidance_interval=()))
    none = sampling.sample_frame(toy, None, schedule, keys, condition, options.replace(audio_guidance=1.0))
    assert float(jnp.abs(chain - every).max()) > 1e-3 and float(jnp.abs(chain - none).max()) > 1e-3
    # Grey guidance reaches the scan's guided steps.
    grey = sampling.sample_frame(toy, None, schedule, keys, condition, options.replace(guidance_grey=True))
    assert float(jnp.abs(grey - chain).max()) > 1e-3
    # An interval that holds every step is no interval.
    whole = sampling.sample_frame(
        toy, None, schedule, keys, condition, options.replace(guidance_interval=(0.0, 1.0))
    )
    np.testing.assert_allclose(whole, every, atol=1e-6)


def test_a_guidance_gate_guides_some_examples_of_a_batch():
    """[ours] guided_output's gate (distillation's per-example timesteps): a gated example gets
    the guided output, the others the plain conditional one; bad intervals are refused."""

    def toy(params, x_t, t, identity, motion, audio):
        a = audio.mean(axis=(1, 2))[:, None, None, None]
        return jnp.concatenate([x_t * 0.5 + a, x_t * 0.0 + 2.0 * a], axis=-1)

    x = jnp.asarray(np.random.default_rng(7).normal(size=(2, 4, 4, 3)), jnp.float32)
    audio, null = jnp.asarray([[[1.0, 1.0]], [[3.0, 3.0]]]), jnp.asarray([-1.0, -1.0])
    args = (None, x, jnp.array([900, 100]), x, x[:, None], audio)
    gate = sampling.guided_steps(args[2], (0.5, 1.0), 1000)
    np.testing.assert_array_equal(gate, [True, False])
    gated = np.asarray(sampling.guided_output(toy, *args, null, 4.0, (), gate))
    np.testing.assert_allclose(
        gated[0], np.asarray(sampling.guided_output(toy, *args, null, 4.0))[0], rtol=1e-6
    )
    np.testing.assert_array_equal(gated[1], np.asarray(toy(*args))[1])
    for bad in [(0.5,), (0.8, 0.2), (-0.1, 1.0)]:
        with pytest.raises(ValueError, match="guidance_interval"):
            make_options(guidance_interval=bad)
    assert make_options().guidance_interval == ()
    # 10 steps: guided ones cost two passes, the others one.
    ten = make_options(sampler="ddim", steps=10).replace(audio_guidance=4.0, null_audio=(0.0,) * 4)
    assert ten.passes_per_frame() == 20 and ten.replace(audio_guidance=1.0).passes_per_frame() == 10
    assert ten.replace(guidance_interval=(0.0, 0.5)).passes_per_frame() == 15  # t = 0, 111, ..., 444
    # As run_sample.py's list flag passes it.
    flagged = SamplingOptions.from_config(test_config.get_config(), guidance_interval=["0.4", "1"])
    assert flagged.guidance_interval == (0.4, 1.0)


def test_grey_guidance_moves_every_channel_by_the_channel_mean_of_the_difference():
    """[ours] guidance_grey: pred(audio) + (g - 1) mean_c(pred(audio) - pred(null)), the same
    shift in R, G and B, so guidance changes how dark the frame is, not its colour; the
    variance channels stay those of the audio pass, and the region and gate still apply."""

    def toy(params, x_t, t, identity, motion, audio):
        a = audio.mean(axis=(1, 2))[:, None, None, None] * jnp.asarray([1.0, -2.0, 4.0])
        return jnp.concatenate([x_t * 0.5 + a, x_t * 0.0 + 2.0], axis=-1)

    x = jnp.asarray(np.random.default_rng(8).normal(size=(2, 8, 8, 3)), jnp.float32)
    audio, null = jnp.asarray([[[1.0, 1.0]], [[3.0, 3.0]]]), jnp.asarray([-1.0, -1.0])
    args = (None, x, jnp.array([5, 5]), x, x[:, None], audio)
    cond = np.asarray(toy(*args))
    grey = np.asarray(sampling.guided_output(toy, *args, null, 4.0, grey=True))
    # diff per channel = (a - null) * (1, -2, 4): its channel mean is (a + 1) * 1.
    shift = 3.0 * (np.array([1.0, 3.0]) + 1.0)[:, None, None, None]
    np.testing.assert_allclose(grey[..., :3], cond[..., :3] + shift, rtol=1e-6)
    np.testing.assert_array_equal(grey[..., 3:], cond[..., 3:])
    colour = np.asarray(sampling.guided_output(toy, *args, null, 4.0))
    assert np.abs(colour - grey).max() > 1.0
    boxed = np.asarray(sampling.guided_output(toy, *args, null, 4.0, (0.5, 1.0, 0.0, 1.0), grey=True))
    np.testing.assert_array_equal(boxed[:, :3], cond[:, :3])  # above the box: unguided
    gated = np.asarray(sampling.guided_output(toy, *args, null, 4.0, (), jnp.array([False, True]), grey=True))
    np.testing.assert_array_equal(gated[0], cond[0])
    np.testing.assert_allclose(gated[1], grey[1], rtol=1e-6)
    flagged = SamplingOptions.from_config(test_config.get_config(), guidance_grey=True)
    assert flagged.guidance_grey and not make_options().guidance_grey
