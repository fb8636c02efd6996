"""Training batches of an experiment config (docs/method.md, section 4).

A dataset folder is either a prepared TFDS dataset (TFRecord shards, read with tf.data by
``data.records.RecordIterator``) or an ``export_arrays`` folder (read with numpy alone by
``data.arrays.ArrayIterator``, for machines without TensorFlow). Both serve the examples of
``data.plan.epoch_plan`` and so the same batches; TensorFlow is imported only for the first.
"""

from __future__ import annotations

from dheads_jax.data import arrays, plan

example_indices = plan.example_indices


def make_train_iterator(
    config,
    *,
    split: str = "train",
    batch_size: int | None = None,
    seed: int | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    state: dict | None = None,
    dataset_dir: str | None = None,
) -> plan.PlannedIterator:
    """The training input pipeline of an experiment config.

    Args:
      config: experiment config; uses config.data, config.seed, config.train.batch_size.
      split: dataset split.
      batch_size: examples per batch on this process; default global batch / process count.
      seed: default config.seed.
      process_index, process_count: default jax.process_index() / jax.process_count().
      state: a position from ``get_state`` to resume from.
      dataset_dir: default config.data.dataset_dir; a TFDS dataset or an arrays folder.

    Returns:
      An iterator of numpy batches (``plan.PlannedIterator``), ready for
      jax.make_array_from_process_local_data.
    """
    if process_index is None or process_count is None:
        import jax

        process_index, process_count = jax.process_index(), jax.process_count()
    if batch_size is None:
        if config.train.batch_size % process_count:
            raise ValueError(
                f"global batch {config.train.batch_size} is not divisible by {process_count} processes"
            )
        batch_size = config.train.batch_size // process_count
    path = dataset_dir or config.data.dataset_dir
    kwargs = dict(
        split=split,
        batch_size=batch_size,
        seed=config.seed if seed is None else seed,
        process_index=process_index,
        process_count=process_count,
        state=state,
    )
    if arrays.is_arrays_dir(path):
        return arrays.ArrayIterator(path, config.data, **kwargs)
    from dheads_jax.data import records

    return records.RecordIterator(path, config.data, **kwargs)
