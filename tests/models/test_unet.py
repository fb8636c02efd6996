"""The U-Net: exact sizes, embeddings, zero init, conditioning paths, bf16 (docs/method.md, section 2)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import crema, lrw
from dheads_jax.diffusion import build_schedule
from dheads_jax.models import factory, timestep_embedding, unet
from dheads_jax.train.objective import LossOptions, diffusion_loss
from tests import helpers


def count(tree):
    leaves = jax.tree.leaves(tree)
    return sum(int(np.prod(x.shape)) for x in leaves), len(leaves)


def test_crema_and_lrw_sizes_match_the_official_model():
    assert count(factory.param_shapes(crema.get_config())) == (215_748_614, 324)
    assert count(factory.param_shapes(lrw.get_config())) == (215_739_398, 324)
    assert factory.input_channels(crema.get_config()) == 12
    assert factory.input_channels(lrw.get_config()) == 8


def test_first_conv_and_attention_shapes_follow_the_official_layout():
    p = factory.param_shapes(crema.get_config())
    assert p["input_blocks_0_0"]["kernel"].shape == (3, 3, 12, 256)
    assert p["input_blocks_7_1"]["qkv"]["kernel"].shape == (768, 2304)
    assert p["output_blocks_2_2"]["in_layers_2"]["kernel"].shape == (3, 3, 768, 768)
    assert p["output_blocks_5_1"]["t_emb_layers_1"]["kernel"].shape == (1024, 1024)
    assert p["audio_embed_0"]["kernel"].shape == (1280, 1024)
    assert p["out_2"]["kernel"].shape == (3, 3, 256, 6)
    assert "input_blocks_3_1" not in p and "middle_block_1" in p


def test_timestep_embedding_uses_the_2c_divisor_cos_first():
    dim = 256
    t = np.array([0, 1, 37, 999])
    emb = np.asarray(timestep_embedding(jnp.asarray(t), dim))
    k = np.arange(dim // 2)
    freqs = np.exp(-math.log(1e4) * k / (2 * dim))
    assert freqs[1] == pytest.approx(0.982171, rel=1e-5)  # ADM's C/2 divisor would give 0.9306
    args = t[:, None] * freqs[None]
    np.testing.assert_allclose(emb[:, : dim // 2], np.cos(args), atol=2e-4)
    np.testing.assert_allclose(emb[:, dim // 2 :], np.sin(args), atol=2e-4)
    np.testing.assert_array_equal(emb[0], np.r_[np.ones(dim // 2), np.zeros(dim // 2)])


def test_output_is_exactly_zero_at_initialisation():
    config = helpers.tiny_config()
    model = factory.build_unet(config)
    params = helpers.init_params(model, config)
    batch = helpers.random_batch(config, 2)
    out = helpers.apply(model, params, batch, [3, 900])
    assert out.shape == (2, 32, 32, 6)
    assert np.all(np.asarray(out) == 0.0)


def test_conditioning_reaches_the_output_after_training_steps():
    config = helpers.tiny_config()
    model = factory.build_unet(config)
    params = helpers.init_params(model, config)
    schedule = build_schedule("cosine", 1000)
    batch = helpers.random_batch(config, 4)
    opt = optax.adam(1e-3)
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, key):
        grads, _ = jax.grad(diffusion_loss, has_aux=True)(params, model, schedule, batch, key, LossOptions())
        updates, opt_state = opt.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state

    probe = helpers.random_batch(config, 2, seed=5)
    other_audio = dict(probe, audio=probe["audio"][::-1])
    other_id = dict(probe, identity=probe["identity"][::-1])
    t = [500, 500]

    params, opt_state = step(params, opt_state, jax.random.key(0))
    base = helpers.apply(model, params, probe, t)
    # After one step only the final conv has moved (every other gradient passes
    # through its zero kernel); the identity reaches it through the skip paths.
    assert float(jnp.abs(helpers.apply(model, params, other_id, t) - base).max()) > 1e-5
    np.testing.assert_array_equal(helpers.apply(model, params, other_audio, t), base)

    # The second step moves the zero-initialised residual convs, and audio acts.
    params, opt_state = step(params, opt_state, jax.random.key(1))
    base = helpers.apply(model, params, probe, t)
    assert float(jnp.abs(helpers.apply(model, params, other_audio, t) - base).max()) > 1e-6
    assert float(jnp.abs(helpers.apply(model, params, other_id, t) - base).max()) > 1e-5


def test_motion_frames_enter_in_oldest_first_channel_order():
    config = helpers.tiny_config()
    model = factory.build_unet(config)
    params = helpers.random_params(config)
    batch = helpers.random_batch(config, 1)
    out = helpers.apply(model, params, batch, [10])
    # Putting the motion frames into the channel slots by hand must give the same output.
    kernel = params["input_blocks_0_0"]["kernel"]
    manual = jnp.concatenate(
        [batch["target"], batch["motion"][:, 0], batch["motion"][:, 1], batch["identity"]], axis=-1
    )
    conv_in = jax.lax.conv_general_dilated(
        manual, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    capture = jax.jit(
        lambda params: model.apply(
            {"params": params},
            batch["target"],
            jnp.asarray([10]),
            batch["identity"],
            batch["motion"],
            batch["audio"],
            capture_intermediates=lambda mdl, _: mdl.name == "input_blocks_0_0",
        )
    )
    captured = capture(params)[1]["intermediates"]["input_blocks_0_0"]["__call__"][0]
    np.testing.assert_allclose(captured, conv_in + params["input_blocks_0_0"]["bias"], atol=1e-5)
    assert out.shape == (1, 32, 32, 6)


def test_grayscale_motion_model_takes_one_channel_per_motion_frame():
    config = helpers.tiny_config(grayscale_motion=True)
    assert factory.input_channels(config) == 8
    params = factory.param_shapes(config)
    assert params["input_blocks_0_0"]["kernel"].shape[2] == 8


def test_bf16_compute_keeps_float32_params_and_close_outputs():
    config = helpers.tiny_config()
    f32 = factory.build_unet(config)
    bf16 = factory.build_unet(config, dtype="bfloat16")
    params = helpers.random_params(config)
    assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype("float32")}
    batch = helpers.random_batch(config, 2)
    ref = np.asarray(helpers.apply(f32, params, batch, [100, 700]))
    got = helpers.apply(bf16, params, batch, [100, 700])
    assert got.dtype == jnp.float32
    rel = np.linalg.norm(np.asarray(got) - ref) / np.linalg.norm(ref)
    assert 0 < rel < 0.03


def test_motion_mask_hides_exactly_its_box_of_the_motion_frames():
    """[ours] model.motion_mask: pixels inside the box of a motion frame cannot reach the output."""
    config = helpers.tiny_config()
    config.model.motion_mask = (0.5, 0.75, 0.25, 0.75)  # rows 16..23, cols 8..23 at 32 px
    assert unet.motion_mask_box(config.model.motion_mask, 32) == (16, 24, 8, 24)
    model = factory.build_unet(config)
    plain = factory.build_unet(helpers.tiny_config())
    # The mask adds no parameters, so an unmasked model's parameters fit.
    params = helpers.random_params(helpers.tiny_config())
    batch = helpers.random_batch(config, 1)
    masked = unet.mask_motion(jnp.asarray(batch["motion"]), config.model.motion_mask)
    inside = np.zeros((32, 32), bool)
    inside[16:24, 8:24] = True
    np.testing.assert_array_equal(np.asarray(masked)[:, :, inside], 0.0)
    np.testing.assert_array_equal(np.asarray(masked)[:, :, ~inside], batch["motion"][:, :, ~inside])

    out = helpers.apply(model, params, batch, [500])
    changed_inside = dict(batch, motion=batch["motion"].copy())
    changed_inside["motion"][:, :, inside] = -batch["motion"][:, :, inside]
    np.testing.assert_array_equal(helpers.apply(model, params, changed_inside, [500]), out)
    # The same change moves the unmasked model, and a change outside the box moves the masked one.
    plain_out = helpers.apply(plain, params, batch, [500])
    assert float(jnp.abs(helpers.apply(plain, params, changed_inside, [500]) - plain_out).max()) > 1e-3
    changed_outside = dict(batch, motion=batch["motion"].copy())
    changed_outside["motion"][:, :, ~inside] = -batch["motion"][:, :, ~inside]
    assert float(jnp.abs(helpers.apply(model, params, changed_outside, [500]) - out).max()) > 1e-3


@pytest.mark.parametrize(
    "box", [(0.5, 0.5, 0.1, 0.9), (0.2, 0.8, 0.9, 0.1), (0.0, 1.2, 0.0, 1.0), (0.1, 0.2, 0.3)]
)
def test_motion_mask_rejects_a_box_that_is_not_inside_the_image(box):
    with pytest.raises(ValueError, match="motion_mask"):
        unet.motion_mask_box(box, 64)


def test_zero_init_audio_starts_every_audio_scale_shift_layer_at_zero():
    """[ours] model.zero_init_audio: same parameters, audio layers start at 0 (official: random)."""
    config = helpers.tiny_config()
    official = helpers.init_params(factory.build_unet(config), config)
    config.model.zero_init_audio = True
    zeroed = helpers.init_params(factory.build_unet(config), config)
    assert jax.tree.structure(official) == jax.tree.structure(zeroed)
    flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(zeroed)}
    official_flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(official)}
    audio_kernels = [k for k in flat if "audio_emb_layers_1" in k and "kernel" in k]
    assert len(audio_kernels) == 10  # one per residual block of the test config
    for k in audio_kernels:
        assert not np.any(np.asarray(flat[k]))
        assert float(np.std(np.asarray(official_flat[k]))) > 0.01
    # Everything else is initialised exactly as the official model.
    for k, v in flat.items():
        if k not in audio_kernels:
            np.testing.assert_array_equal(v, official_flat[k])


def _params_and_batch():
    config = helpers.tiny_config()
    params = helpers.random_params(config)
    return config, params, helpers.random_batch(config, 3, seed=4)


def test_dot_product_attention_equals_the_einsum_path():
    config, params, batch = _params_and_batch()
    outs = {}
    for impl in ("einsum", "dot_product"):
        config.model.attention = impl
        outs[impl] = np.asarray(
            helpers.apply(factory.build_unet(config), params, batch, jnp.array([5, 500, 990]))
        )
    assert np.abs(outs["einsum"]).max() > 0.1
    np.testing.assert_allclose(outs["dot_product"], outs["einsum"], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="unknown attention implementation"):
        config.model.attention = "flash"
        helpers.apply(factory.build_unet(config), params, batch, jnp.array([5, 500, 990]))


@pytest.mark.skipif(jax.devices()[0].platform != "gpu", reason="cuDNN attention needs an NVIDIA GPU")
def test_cudnn_attention_equals_the_einsum_path_in_bf16():
    config, params, batch = _params_and_batch()
    config.model.dtype = "bfloat16"
    config.model.head_channels = 16  # cuDNN's kernel takes head sizes that are multiples of 8
    outs = {}
    for impl in ("einsum", "cudnn"):
        config.model.attention = impl
        outs[impl] = np.asarray(
            helpers.apply(factory.build_unet(config), params, batch, jnp.array([5, 500, 990])), np.float32
        )
    assert np.abs(outs["einsum"]).max() > 0.1
    # bf16 keeps 8 bits of mantissa: the two orders of summation differ by a few of its ulps.
    np.testing.assert_allclose(outs["cudnn"], outs["einsum"], atol=3e-2, rtol=0)


@pytest.mark.slow  # three compiled gradients
def test_remat_changes_neither_the_output_nor_the_gradient():
    config, params, batch = _params_and_batch()
    schedule = build_schedule("cosine", 1000)
    results = []
    for remat, policy in ((False, ""), (True, ""), (True, "dots_with_no_batch_dims_saveable")):
        config.model.remat, config.model.remat_policy = remat, policy
        model = factory.build_unet(config)

        def loss(p, model=model):
            return diffusion_loss(p, model, schedule, batch, jax.random.key(0), LossOptions())[0]

        results.append(jax.jit(jax.value_and_grad(loss))(params))
    (l0, g0), *rematerialised = results
    for l1, g1 in rematerialised:
        np.testing.assert_allclose(l1, l0, rtol=1e-6)
        for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1), strict=True):
            np.testing.assert_allclose(b, a, atol=1e-6 * max(1.0, float(np.abs(a).max())), rtol=1e-5)
    config.model.remat_policy = "save_everything_please"
    with pytest.raises(ValueError, match="unknown remat policy"):
        helpers.apply(factory.build_unet(config), params, batch, jnp.array([5, 500, 990]))
