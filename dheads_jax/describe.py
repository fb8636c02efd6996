"""What a config costs before anything is allocated: size, FLOPs, memory."""

from __future__ import annotations

import jax
import ml_collections
import numpy as np

from dheads_jax.models import factory


def xla_flops(stage) -> float:
    """XLA's FLOP count of a lowered (``jit(f).lower(...)``: the program as written, the model
    FLOPs) or compiled (after XLA's rewrites, rematerialisation included) computation."""
    cost = stage.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost  # one entry per device in older JAX
    return float(cost["flops"])


def forward_flops(config: ml_collections.ConfigDict, batch: int = 1) -> float:
    """XLA's FLOP estimate of one U-Net forward pass, from the lowered HLO (no compile)."""
    model = factory.build_unet(config)
    params = factory.param_shapes(config)
    fn = jax.jit(lambda p, inputs: model.apply({"params": p}, **inputs))
    return xla_flops(fn.lower(params, factory.input_specs(config, batch)))


def describe(config: ml_collections.ConfigDict) -> dict[str, float | int | str]:
    """Parameter count, tensor count, input channels, GFLOPs at batch 1, parameter memory."""
    leaves = jax.tree.leaves(factory.param_shapes(config))
    n = sum(int(np.prod(x.shape)) for x in leaves)
    return dict(
        name=config.name,
        image_size=config.data.image_size,
        input_channels=factory.input_channels(config),
        parameters=n,
        tensors=len(leaves),
        forward_gflops=forward_flops(config) / 1e9,
        params_mib_fp32=n * 4 / 2**20,
        params_mib_bf16=n * 2 / 2**20,
        # Parameters plus Adam's two moments, all float32 (EMA adds one more copy).
        train_state_mib_fp32=n * 4 * 3 / 2**20,
    )


def format_description(d: dict) -> str:
    """The human-readable table printed by ``run_train.py --describe``."""
    rows = [
        ("config", d["name"]),
        ("image size", f"{d['image_size']} x {d['image_size']}"),
        ("input channels", str(d["input_channels"])),
        ("parameters", f"{d['parameters']:,} in {d['tensors']} tensors"),
        ("forward GFLOPs (batch 1, XLA estimate)", f"{d['forward_gflops']:.1f}"),
        ("parameter memory fp32", f"{d['params_mib_fp32']:.1f} MiB"),
        ("parameter memory bf16", f"{d['params_mib_bf16']:.1f} MiB"),
        ("params + Adam state fp32", f"{d['train_state_mib_fp32']:.1f} MiB"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
