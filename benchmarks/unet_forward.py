"""U-Net forward and forward+backward throughput on this machine.

  python -m benchmarks.unet_forward | tee benchmarks/results/unet_forward.txt

Measures configs/test.py and a reduced paper-shaped config (configs/crema.py at
64 px with 64 base channels), float32 and bf16 compute, and compares the achieved
GFLOP/s (XLA's FLOP estimate / measured time) with a dense matmul measured in the
same run. Takes about 5 minutes on 2 CPU cores.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from benchmarks import common
from configs import test as test_config
from dheads_jax.diffusion import build_schedule
from dheads_jax.models import factory
from dheads_jax.train.objective import diffusion_loss


def bench(config, batch: int, dtype: str, peak: float) -> list[list[str]]:
    model = factory.build_unet(config, dtype=dtype)
    params = jax.jit(lambda k: model.init(k, **factory.dummy_inputs(config, 1))["params"])(jax.random.key(0))
    inputs = factory.dummy_inputs(config, batch)
    schedule = build_schedule(config.diffusion.schedule, config.diffusion.num_timesteps)
    key = jax.random.key(1)
    batch_data = dict(
        target=inputs["x_t"],
        identity=inputs["identity"],
        motion=inputs["motion"],
        audio=inputs["audio"],
        mouth_box=jnp.tile(jnp.array([[8, 24, 8, 24]], jnp.int32), (batch, 1)),
    )

    fwd = jax.jit(lambda p, inp: model.apply({"params": p}, **inp))
    grad = jax.jit(
        lambda p, b, k: jax.grad(diffusion_loss, has_aux=True)(
            p, model, schedule, b, k, lambda_vlb=1e-4, lambda_ls=0.2
        )[0]
    )
    rows = []
    for name, fn, args in (("forward", fwd, (params, inputs)), ("fwd+bwd", grad, (params, batch_data, key))):
        compiled = fn.lower(*args).compile()
        flops = float(compiled.cost_analysis()["flops"])
        sec = common.time_call(compiled, *args)
        gflops = flops / sec / 1e9
        rows.append(
            [
                config.name,
                dtype,
                str(batch),
                name,
                f"{sec * 1e3:.1f}",
                f"{batch / sec:.1f}",
                f"{flops / 1e9:.2f}",
                f"{gflops:.1f}",
                f"{gflops / peak:.2f}",
            ]
        )
    return rows


def main():
    print(common.machine_line())
    peak = common.matmul_peak_gflops()
    print(f"dense f32 matmul 2048^3 peak: {peak:.1f} GFLOP/s (measured in this run)")
    print()
    header = ["config", "dtype", "batch", "pass", "ms/call", "examples/s", "GFLOP/call", "GFLOP/s", "of peak"]
    rows = []
    for config, batch in ((test_config.get_config(), 8), (common.paper_shaped_config(), 4)):
        for dtype in ("float32", "bfloat16"):
            rows += bench(config, batch, dtype, peak)
    common.print_table(header, rows)


if __name__ == "__main__":
    main()
