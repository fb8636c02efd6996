"""Device mesh, shardings and global batches (jit + NamedSharding, no pmap).

The mesh has two axes: ``data`` (batch parallelism) and ``fsdp`` (the batch is split
over it too, and large parameter and optimizer tensors are sharded over it).
"""

from __future__ import annotations

import jax
import ml_collections
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


def make_mesh(mesh_config: ml_collections.ConfigDict | None = None, devices=None) -> Mesh:
    """A (data, fsdp) mesh with Auto axis types.

    Args:
      mesh_config: ``data`` and ``fsdp`` sizes; -1 for one of them means "the rest of
        the devices". None means all devices on ``data``.
      devices: defaults to ``jax.devices()``.
    """
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    data, fsdp = (-1, 1) if mesh_config is None else (mesh_config["data"], mesh_config["fsdp"])
    if data == -1 and fsdp == -1:
        raise ValueError("mesh: at most one of data and fsdp may be -1")
    if data == -1:
        data = n // fsdp
    if fsdp == -1:
        fsdp = n // data
    if data * fsdp != n:
        raise ValueError(f"mesh: data={data} x fsdp={fsdp} does not use the {n} devices")
    return jax.make_mesh(
        (data, fsdp), ("data", "fsdp"), axis_types=(AxisType.Auto, AxisType.Auto), devices=devices
    )


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over every device of the mesh (all its axes, in order).

    On the training mesh that is ``("data", "fsdp")``; a sampling mesh may have only "data".
    """
    return NamedSharding(mesh, P(tuple(mesh.axis_names)))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def fsdp_spec(shape: tuple[int, ...], fsdp_size: int, min_size: int = 2**18) -> P:
    """Shards the largest axis divisible by ``fsdp_size`` of a large tensor; else replicate."""
    if fsdp_size == 1 or int(np.prod(shape)) < min_size:
        return P()
    for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
        if shape[axis] % fsdp_size == 0:
            spec = [None] * len(shape)
            spec[axis] = "fsdp"
            return P(*spec)
    return P()


def tree_shardings(mesh: Mesh, abstract_tree, min_size: int = 2**18):
    """NamedShardings for a pytree of arrays/ShapeDtypeStructs: FSDP for large leaves."""
    fsdp = mesh.shape["fsdp"]
    return jax.tree.map(
        lambda x: NamedSharding(mesh, fsdp_spec(tuple(x.shape), fsdp, min_size)), abstract_tree
    )


def global_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Process-local numpy batch -> global jax arrays sharded over the batch axes."""
    sharding = batch_sharding(mesh)
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local_batch.items()
    }


def put(tree, shardings):
    """``jax.device_put`` that also works when the shardings span several processes.

    Host (numpy) leaves must then hold the same value on every process; each process places
    the shards of its own devices. jax.Array leaves are resharded.
    """

    def one(x, sharding):
        if sharding.is_fully_addressable or isinstance(x, jax.Array):
            return jax.device_put(x, sharding)
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(one, tree, shardings)


def to_host(x) -> np.ndarray:
    """The whole value of an array as numpy on this process, gathering shards of other processes."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))
