"""The learning-rate schedule: 18 decays of 0.8 and linear warm-up."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dheads_jax.train import optimizer
from tests import helpers


def test_lr_schedule_makes_18_decays_of_0_8():
    config = helpers.tiny_config()
    fn = optimizer.lr_schedule(config.optim, num_steps=1800)
    lrs = np.asarray(jax.vmap(fn)(jnp.arange(1801)))
    values = sorted(set(lrs.tolist()), reverse=True)
    assert len(values) == 19
    np.testing.assert_allclose(np.array(values[1:]) / np.array(values[:-1]), 0.8, rtol=1e-5)
    assert lrs[0] == pytest.approx(5e-5) and lrs[99] == pytest.approx(5e-5)
    assert lrs[100] == pytest.approx(4e-5) and lrs[-1] == pytest.approx(5e-5 * 0.8**18, rel=1e-5)


def test_warmup_ramps_linearly():
    config = helpers.tiny_config()
    config.optim.warmup_steps = 10
    fn = optimizer.lr_schedule(config.optim, num_steps=1000)
    np.testing.assert_allclose([fn(0), fn(4), fn(9), fn(20)], [5e-6, 2.5e-5, 5e-5, 5e-5], rtol=1e-5)
