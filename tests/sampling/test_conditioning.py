"""The audio window and the motion buffer of the video loop."""

import jax.numpy as jnp
import numpy as np

from dheads_jax import sampling

NUM_STEPS = 6


def test_audio_window_indices_follow_the_clamped_rule():
    ids = lambda k, n: np.asarray(sampling.audio_window_indices(k, n, 2)).tolist()
    # First frames: the first embedding repeats.
    assert ids(0, 10) == [0, 0, 0, 1, 2]
    assert ids(1, 10) == [0, 0, 1, 2, 3]
    assert ids(2, 10) == [0, 1, 2, 3, 4]
    # Middle.
    assert ids(5, 10) == [3, 4, 5, 6, 7]
    # End: the last embedding repeats.
    assert ids(8, 10) == [6, 7, 8, 9, 9]
    assert ids(9, 10) == [7, 8, 9, 9, 9]
    # Clips shorter than the window.
    assert ids(0, 1) == [0, 0, 0, 0, 0]
    assert ids(1, 2) == [0, 0, 1, 1, 1]
    # Per-video lengths.
    assert ids(3, np.array([10, 4])) == [[1, 2, 3, 4, 5], [1, 2, 3, 3, 3]]
    assert np.asarray(sampling.audio_window_indices(4, 20, 1)).tolist() == [3, 4, 5]


def test_audio_window_indices_match_the_official_rolling_list():
    # The official sampler keeps a list and rolls it after each frame.
    for n in (3, 4, 9):
        audio_ids = [0, 0] + [0, 1, 2]
        for k in range(n):
            expected = [min(i, n - 1) for i in audio_ids]
            assert np.asarray(sampling.audio_window_indices(k, n, 2)).tolist() == expected
            audio_ids = audio_ids[1:] + [min(k + 3, n - 1)]


def test_audio_window_gathers_embeddings():
    audio = np.arange(2 * 6 * 1, dtype=np.float32).reshape(2, 6, 1)
    window = sampling.audio_window(jnp.asarray(audio), 5, jnp.array([6, 3]), 2)
    assert np.asarray(window)[..., 0].tolist() == [[3, 4, 5, 5, 5], [8, 8, 8, 8, 8]]


def _buffer_labels(identity_value, frame_values, every, num_frames, m_x=2):
    """Motion buffer used for each frame, as labels ('id' or the frame index)."""
    identity = np.full((1, 2, 2, 3), identity_value, np.float32)
    motion = sampling.init_motion_buffer(identity, m_x, grayscale=False)
    labels = []
    for k in range(num_frames):
        motion = sampling.stabilize_motion_buffer(motion, identity, k, every, grayscale=False)
        values = np.asarray(motion)[0, :, 0, 0, 0]
        labels.append(["id" if v == identity_value else frame_values.index(v) for v in values])
        frame = np.full((1, 2, 2, 3), frame_values[k], np.float32)
        motion = sampling.push_motion_frame(motion, frame, grayscale=False)
    return labels


def test_motion_buffer_follows_spec_without_stabilize():
    values = [0.1 * (k + 1) for k in range(8)]
    values = [float(np.float32(v)) for v in values]
    labels = _buffer_labels(-1.0, values, every=0, num_frames=8)
    assert labels == [
        ["id", "id"],
        ["id", 0],
        [0, 1],
        [1, 2],
        [2, 3],
        [3, 4],
        [4, 5],
        [5, 6],
    ]


def test_motion_buffer_follows_spec_with_stabilize_every_3():
    values = [float(np.float32(0.1 * (k + 1))) for k in range(8)]
    labels = _buffer_labels(-1.0, values, every=3, num_frames=8)
    assert labels == [
        ["id", "id"],
        ["id", 0],
        [0, 1],
        ["id", 2],  # k = 3: oldest slot replaced by x_Id
        [2, 3],
        [3, 4],
        ["id", 5],  # k = 6
        [5, 6],
    ]


def test_motion_buffer_grayscale_and_three_frames():
    identity = np.zeros((1, 2, 2, 3), np.float32)
    identity[..., 0] = 1.0  # pure red
    motion = sampling.init_motion_buffer(identity, 3, grayscale=True)
    assert motion.shape == (1, 3, 2, 2, 1)
    np.testing.assert_allclose(np.asarray(motion), 0.2989, rtol=1e-6)
    frame = np.full((1, 2, 2, 3), 0.5, np.float32)
    motion = sampling.push_motion_frame(motion, frame, grayscale=True)
    np.testing.assert_allclose(np.asarray(motion)[0, :, 0, 0, 0], [0.2989, 0.2989, 0.5 * 0.9999], rtol=1e-6)
