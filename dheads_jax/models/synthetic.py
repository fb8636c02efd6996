"""Synthetic inputs and parameters of the right shapes, for tests and benchmarks.

Drawn with numpy on the shapes the config implies, so nothing has to compile: a batch in the
input pipeline's layout, parameters none of which is zero (the real initialisation zeroes
the output convs, which would hide the rest of the network from a test or a timing).
"""

from __future__ import annotations

import jax
import numpy as np

from dheads_jax.models import factory


def random_batch(config, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A batch of the input pipeline's layout (target, identity, motion, audio, mouth_box), random."""
    rng = np.random.default_rng(seed)
    s = config.data.image_size
    mc = factory.motion_channels(config)
    boxes = []
    for _ in range(batch):
        top, left = rng.integers(0, s // 2, size=2)
        boxes.append([top, top + rng.integers(4, s // 2), left, left + rng.integers(4, s // 2)])
    return dict(
        target=rng.uniform(-1, 1, (batch, s, s, 3)).astype(np.float32),
        identity=rng.uniform(-1, 1, (batch, s, s, 3)).astype(np.float32),
        motion=rng.uniform(-1, 1, (batch, config.data.motion_frames, s, s, mc)).astype(np.float32),
        audio=rng.normal(size=(batch, 2 * config.data.audio_context + 1, config.data.audio_dim)).astype(
            np.float32
        ),
        mouth_box=np.asarray(boxes, np.int32),
    )


def random_params(config, seed: int = 0, gain: float = 0.5):
    """Random float32 parameters of the config's model, none zero: kernels ~ N(0, gain^2 / fan_in),
    norm scales ~ 1 + N(0, 0.01), biases ~ N(0, 0.01)."""
    rng = np.random.default_rng(seed)

    def init(path, leaf):
        name = path[-1].key
        if name == "kernel":
            fan_in = int(np.prod(leaf.shape[:-1]))
            return (gain * rng.standard_normal(leaf.shape) / np.sqrt(fan_in)).astype(np.float32)
        base = 1.0 if name == "scale" else 0.0
        return (base + 0.1 * rng.standard_normal(leaf.shape)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(init, factory.param_shapes(config))
