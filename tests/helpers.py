"""Shared test utilities: tiny configs, random batches, non-trivial parameters."""

import jax
import jax.numpy as jnp
import numpy as np

from configs import test as test_config
from dheads_jax.models import factory


def tiny_config(**data_overrides):
    config = test_config.get_config()
    for k, v in data_overrides.items():
        config.data[k] = v
    return config


def random_batch(config, batch, seed=0):
    """A batch of the input pipeline's layout with random content."""
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


_INIT_CACHE = {}


def init_params(model, config, seed=0):
    """Initial parameters, cached per (model, input shapes, seed).

    XLA on the CPU takes 10-20 s to compile the ~100 threefry draws of an init, so
    tests share one initialisation per model instead of paying that each time.
    """
    specs = factory.input_specs(config, 1)
    cache_key = (model, tuple((k, v.shape) for k, v in specs.items()), seed)
    if cache_key not in _INIT_CACHE:
        init = jax.jit(lambda key: model.init(key, **factory.dummy_inputs(config, 1))["params"])
        _INIT_CACHE[cache_key] = init(jax.random.key(seed))
    return _INIT_CACHE[cache_key]


def perturbed(params, seed=1, scale=0.05):
    """Adds noise to every tensor so that zero-initialised layers stop hiding the rest."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(
        treedef,
        [p + scale * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys, strict=True)],
    )


def apply(model, params, batch, t):
    """The model's output on a batch (its target used as x_t) at timesteps t. Jitted."""
    return _jitted_apply(model)(params, batch, jnp.asarray(t))


_APPLY_CACHE = {}


def _jitted_apply(model):
    if model not in _APPLY_CACHE:

        def fn(params, batch, t):
            return model.apply(
                {"params": params}, batch["target"], t, batch["identity"], batch["motion"], batch["audio"]
            )

        _APPLY_CACHE[model] = jax.jit(fn)
    return _APPLY_CACHE[model]


def prepared_samples(config) -> str:
    """The bundled GRID clips prepared for ``config`` (once, under a lock shared by workers)."""
    import fcntl
    import os

    from dheads_jax.data import cache

    os.makedirs(cache.cache_root(), exist_ok=True)
    with open(os.path.join(cache.cache_root(), ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return cache.ensure_dataset(config)


def random_params(config, seed=0, gain=0.5):
    """Random parameters of the model, none zero (the real init zeroes the output convs).

    Drawn with numpy on the parameter shapes, so no initialisation has to compile.
    """
    rng = np.random.default_rng(seed)

    def init(path, leaf):
        name = path[-1].key
        if name == "kernel":
            fan_in = int(np.prod(leaf.shape[:-1]))
            return (gain * rng.standard_normal(leaf.shape) / np.sqrt(fan_in)).astype(np.float32)
        base = 1.0 if name == "scale" else 0.0
        return (base + 0.1 * rng.standard_normal(leaf.shape)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(init, factory.param_shapes(config))


def free_port() -> int:
    """A TCP port free on localhost now, for a jax.distributed coordinator."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
