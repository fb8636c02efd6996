"""Train-step throughput: steps/s and examples/s, compile time reported separately.

  python -m benchmarks.train_step | tee benchmarks/results/train_step.txt

configs/test.py and a reduced paper-shaped config (configs/crema.py at 64 px with 64 base
channels), float32 and bf16 compute, on a mesh of 1 and of 8 devices. On a CPU the 8
"devices" are XLA's fake host devices sharing the same cores, so the 8-device rows measure
the partitioning overhead, not a speed-up; on accelerators the same code runs unchanged.
Takes about 6 minutes on 2 CPU cores.
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402
from configs import test as test_config  # noqa: E402
from dheads_jax import parallel  # noqa: E402
from dheads_jax.diffusion import schedule_from_config  # noqa: E402
from dheads_jax.models import factory  # noqa: E402
from dheads_jax.train import optimizer  # noqa: E402
from dheads_jax.train.loop import state_initializer  # noqa: E402
from dheads_jax.train.step import make_train_step  # noqa: E402


def random_batch(config, batch):
    rng = np.random.default_rng(0)
    specs = factory.input_specs(config, batch)
    out = {k: rng.uniform(-1, 1, v.shape).astype(np.float32) for k, v in specs.items() if k != "timesteps"}
    s = config.data.image_size
    return dict(
        target=out["x_t"],
        identity=out["identity"],
        motion=out["motion"],
        audio=out["audio"],
        mouth_box=np.tile(np.array([[s // 2, 3 * s // 4, s // 4, 3 * s // 4]], np.int32), (batch, 1)),
    )


def bench(config, batch, dtype, devices):
    config = config.copy_and_resolve_references()
    config.model.dtype = dtype
    mesh = parallel.make_mesh(devices=jax.devices()[:devices])
    model = factory.build_unet(config)
    tx = optimizer.make_optimizer(config.optim, 1000)
    lr_fn = optimizer.lr_schedule(config.optim, 1000)
    init_fn = state_initializer(config, model, tx)
    abstract = jax.eval_shape(init_fn, jax.random.key(0))
    shardings = parallel.tree_shardings(mesh, abstract)
    state = jax.jit(init_fn, out_shardings=shardings)(jax.random.key(0))
    step = jax.jit(
        make_train_step(model, schedule_from_config(config.diffusion), tx, lr_fn, config),
        in_shardings=(shardings, parallel.batch_sharding(mesh)),
        out_shardings=(shardings, parallel.replicated(mesh)),
        donate_argnums=(0,),
    )
    data = parallel.global_batch(random_batch(config, batch), mesh)
    t0 = time.perf_counter()
    compiled = step.lower(state, data).compile()
    compile_s = time.perf_counter() - t0
    state, m = compiled(state, data)  # warm-up
    jax.block_until_ready(m)
    n, t0 = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - t0 < 3.0:
        state, m = compiled(state, data)
        jax.block_until_ready(m)
        n += 1
    sec = (time.perf_counter() - t0) / n
    return [
        config.name,
        dtype,
        str(devices),
        str(batch),
        f"{compile_s:.1f}",
        f"{1 / sec:.2f}",
        f"{batch / sec:.1f}",
    ]


def main():
    print(common.machine_line())
    print()
    header = ["config", "dtype", "devices", "global batch", "compile s", "steps/s", "examples/s"]
    rows = []
    for config, batch in ((test_config.get_config(), 8), (common.paper_shaped_config(), 8)):
        for dtype in ("float32", "bfloat16"):
            for devices in (1, 8):
                rows.append(bench(config, batch, dtype, devices))
    common.print_table(header, rows)


if __name__ == "__main__":
    main()
