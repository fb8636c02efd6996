"""Appearance augmentations: off is the identity, one draw per example for all its frames."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dheads_jax.train import augment

B, S, M = 6, 32, 2


def batch_with_a_marked_mouth(seed=0):
    """Frames of smooth random colour with a white mouth box; target == identity == motion."""
    rng = np.random.default_rng(seed)
    base = jax.image.resize(rng.uniform(-0.6, 0.2, (B, 4, 4, 3)), (B, S, S, 3), "linear")
    boxes = np.stack(
        [rng.integers(14, 18, B), rng.integers(22, 27, B), rng.integers(4, 10, B), rng.integers(14, 20, B)],
        -1,
    )
    frames = np.array(base, np.float32)
    for i, (top, bottom, left, right) in enumerate(boxes):
        frames[i, top:bottom, left:right] = 1.0
    frames = jnp.asarray(frames)
    return dict(
        target=frames,
        identity=frames,
        motion=jnp.stack([frames] * M, 1),
        audio=jnp.ones((B, 5, 8)),
        mouth_box=jnp.asarray(boxes, jnp.int32),
    )


def test_everything_off_returns_the_batch_unchanged():
    batch = batch_with_a_marked_mouth()
    assert augment.augment_batch(jax.random.key(0), batch, False, 0.0, 0.0) is batch


@pytest.mark.parametrize(
    "flip,color,zoom", [(True, 0.0, 0.0), (False, 0.3, 0.0), (False, 0.0, 0.2), (True, 0.3, 0.2)]
)
def test_all_frames_of_an_example_change_alike_and_the_mouth_box_follows(flip, color, zoom):
    batch = batch_with_a_marked_mouth()
    out = augment.augment_batch(jax.random.key(3), batch, flip, color, zoom)
    np.testing.assert_array_equal(out["target"], out["identity"])
    for m in range(M):
        np.testing.assert_array_equal(out["motion"][:, m], out["target"])
    np.testing.assert_array_equal(out["audio"], batch["audio"])
    assert float(jnp.abs(out["target"] - batch["target"]).max()) > 0.05  # something changed
    assert float(out["target"].min()) >= -1 and float(out["target"].max()) <= 1
    if color and not (flip or zoom):
        np.testing.assert_array_equal(out["mouth_box"], batch["mouth_box"])
        return
    # The white patch is where the (moved) box says, within the 1 px of rounding.
    for i in range(B):
        top, bottom, left, right = np.asarray(out["mouth_box"][i])
        frame = np.asarray(out["target"][i]).min(-1)
        bright = np.argwhere(frame > frame.min() + 0.9 * np.ptp(frame))
        assert abs(bright[:, 0].min() - top) <= 1 and abs(bright[:, 0].max() + 1 - bottom) <= 1, i
        assert abs(bright[:, 1].min() - left) <= 1 and abs(bright[:, 1].max() + 1 - right) <= 1, i


def test_flip_mirrors_frames_and_boxes_of_the_same_examples():
    batch = batch_with_a_marked_mouth()
    out = augment.augment_batch(jax.random.key(5), batch, True, 0.0, 0.0)
    flipped = [bool(jnp.all(out["target"][i] == batch["target"][i, :, ::-1])) for i in range(B)]
    assert 0 < sum(flipped) < B
    for i in range(B):
        top, bottom, left, right = np.asarray(batch["mouth_box"][i])
        expected = (top, bottom, S - right, S - left) if flipped[i] else (top, bottom, left, right)
        assert tuple(np.asarray(out["mouth_box"][i])) == expected
