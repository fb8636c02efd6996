"""The Checkpointer keeps named pytrees and JSON items."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dheads_jax.checkpointing import Checkpointer


def test_checkpointer_keeps_named_pytrees_and_json_items(tmp_path):
    ckpt = Checkpointer(str(tmp_path / "ckpt"), keep=2)
    tree = {"w": jnp.arange(6, dtype=jnp.float32).reshape(2, 3), "n": {"count": jnp.ones((2,), jnp.int32)}}
    for step in (1, 2, 3):
        assert ckpt.save(step, {"a": jax.tree.map(lambda x, s=step: x * s, tree)}, {"meta": {"step": step}})
    ckpt.wait()
    assert ckpt.all_steps() == [2, 3] and ckpt.latest_step() == 3
    abstract = jax.eval_shape(lambda: tree)
    arrays, json_items = ckpt.restore(2, {"a": abstract}, ("meta",))
    assert json_items == {"meta": {"step": 2}}
    np.testing.assert_array_equal(arrays["a"]["w"], 2 * tree["w"])
    np.testing.assert_array_equal(arrays["a"]["n"]["count"], [2, 2])
    np.testing.assert_array_equal(ckpt.restore_item("a", abstract)["w"], 3 * tree["w"])
    assert ckpt.restore_json("meta") == {"step": 3}
    assert ckpt.has_item("a", 2) and ckpt.has_item("meta") and not ckpt.has_item("b", 2)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Checkpointer(str(tmp_path / "empty")).restore_json("meta")
