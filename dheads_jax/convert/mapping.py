"""Tensor names, shapes and layouts: the official PyTorch U-Net state dict <-> Flax parameters.

Pure numpy; PyTorch is not needed here. A Flax path such as
``("input_blocks_7_1", "qkv", "kernel")`` corresponds to the PyTorch name
``input_blocks.7.1.qkv.weight``. Layouts:

- ``Conv2d`` weight [O, I, kh, kw] -> Flax ``Conv`` kernel [kh, kw, I, O] (HWIO).
- ``Linear`` weight [O, I] -> ``Dense`` kernel [I, O].
- 1x1 ``Conv1d`` weight [O, I, 1] (attention ``qkv`` and ``proj_out``) -> ``Dense`` kernel [I, O].
  The per-head [q, k, v] order of the official fused projection is kept as it is: the Flax
  attention splits its 3C outputs per head in the same order.
- ``GroupNorm`` weight -> ``scale``; every bias as it is.
- Scale-before-shift: the official residual blocks ``chunk(2)`` their embedding projections
  into (scale, shift), as the Flax block's ``split``; no permutation is needed.
- Input channels: the official model concatenates [x_t, motion frames (oldest first),
  identity], which is the Flax model's order, so the first conv is only transposed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

OFFICIAL_TABLE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "official_unet_state_dict.txt")
FIRST_CONV = "input_blocks.0.0.weight"

# Module names that contain an underscore in PyTorch; every other "_" in a Flax module
# name stands for a "." of the PyTorch name.
_MULTIWORD = (
    "input_blocks",
    "output_blocks",
    "middle_block",
    "time_embed",
    "audio_embed",
    "in_layers",
    "out_layers",
    "t_emb_layers",
    "audio_emb_layers",
    "skip_connection",
    "proj_out",
)
# Flax Dense layers that are 1x1 Conv1d layers in the official model.
_CONV1D = ("qkv", "proj_out")
_LEAF_NAMES = {"kernel": "weight", "scale": "weight", "bias": "bias"}

Shape = tuple[int, ...]


def _split_module(name: str) -> list[str]:
    for word in _MULTIWORD:
        if name == word or name.startswith(word + "_"):
            rest = name[len(word) + 1 :]
            return [word] + (rest.split("_") if rest else [])
    return name.split("_")


def torch_name(flax_path: tuple[str, ...]) -> str:
    """The official PyTorch name of a Flax parameter, e.g. ('out_0', 'scale') -> 'out.0.weight'."""
    *modules, leaf = flax_path
    if leaf not in _LEAF_NAMES:
        raise ValueError(f"unexpected Flax parameter {'/'.join(flax_path)}")
    parts = [p for m in modules for p in _split_module(m)]
    return ".".join(parts + [_LEAF_NAMES[leaf]])


def torch_shape(flax_path: tuple[str, ...], shape: Shape) -> Shape:
    """The PyTorch shape of a Flax parameter of ``shape`` (the inverse of ``to_flax``)."""
    if flax_path[-1] != "kernel":
        return tuple(shape)
    if len(shape) == 4:
        kh, kw, i, o = shape
        return (o, i, kh, kw)
    i, o = shape
    return (o, i, 1) if flax_path[-2] in _CONV1D else (o, i)


def to_flax(value: np.ndarray, flax_path: tuple[str, ...]) -> np.ndarray:
    """One PyTorch tensor (as numpy) in the layout of the Flax parameter at ``flax_path``."""
    if flax_path[-1] != "kernel":
        return value
    if value.ndim == 4:
        return value.transpose(2, 3, 1, 0)
    if value.ndim == 3:
        return value[..., 0].T
    return value.T


def flatten(tree: Mapping, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    """{path: leaf} of a nested dict of parameters."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, prefix + (k,)))
        else:
            out[prefix + (k,)] = v
    return out


def unflatten(flat: Mapping[tuple[str, ...], object]) -> dict:
    """The nested dict of ``{path: leaf}``."""
    tree: dict = {}
    for path, v in flat.items():
        node = tree
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = v
    return tree


def table_from_flax(abstract_params: Mapping) -> dict[str, Shape]:
    """{PyTorch name: PyTorch shape} of a Flax parameter tree (arrays or ShapeDtypeStructs)."""
    return {torch_name(p): torch_shape(p, tuple(v.shape)) for p, v in flatten(abstract_params).items()}


def read_table(path: str = OFFICIAL_TABLE_FILE) -> dict[str, Shape]:
    """{name: shape} of a state-dict table file: lines ``name [d0, d1, ...]``, '#' comments."""
    table = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, dims = line.split(" ", 1)
            table[name] = tuple(int(d) for d in dims.strip("[] ").split(",") if d.strip())
    return table


def official_table(input_channels: int = 12) -> dict[str, Shape]:
    """The released CREMA U-Net's state dict; ``input_channels=8`` gives the grayscale variant."""
    table = read_table()
    o, _, kh, kw = table[FIRST_CONV]
    table[FIRST_CONV] = (o, input_channels, kh, kw)
    return table


def describe_mismatch(shapes: Mapping[str, Shape], expected: Mapping[str, Shape], limit: int = 6) -> str:
    """A one-line summary of how ``shapes`` differ from ``expected``; '' when they agree."""
    missing = [n for n in expected if n not in shapes]
    unexpected = [n for n in shapes if n not in expected]
    wrong = [
        f"{n} {list(shapes[n])} (expected {list(expected[n])})"
        for n in expected
        if n in shapes and tuple(shapes[n]) != tuple(expected[n])
    ]

    def listing(what: str, items: list[str]) -> str:
        more = f", ... and {len(items) - limit} more" if len(items) > limit else ""
        return f"{len(items)} {what}: {', '.join(items[:limit])}{more}"

    parts = [
        listing(what, items)
        for what, items in (("with another shape", wrong), ("missing", missing), ("unexpected", unexpected))
        if items
    ]
    return "; ".join(parts)
