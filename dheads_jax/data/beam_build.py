"""The Apache Beam engine of the dataset build.

``TalkingFaces`` uses this module when it is given Beam pipeline options. Like the local
engine it runs in two stages, so that bad clips never reach TFDS (whose Beam writer fails
on a split without examples):

1. ``spool``: a Beam pipeline of its own spreads the candidate clips over the runner's
   workers; each runs ``process.spool_clip`` (the local pool's function) and pickles the
   example into a spool folder every worker can reach (beside the output, e.g. on gs://).
   Every clip's outcome becomes one JSON line of a text output, and each bad clip
   increments the Beam counter ``skipped_<reason>`` (namespace ``talking_faces``): a bad
   clip never fails the pipeline.
2. ``ReadSpool``: TFDS's own Beam pipeline reads the spooled examples of each non-empty
   split and writes the shards.

Needs the ``beam`` extra (``pip install -e ".[beam]"``).
"""

from __future__ import annotations

import io
import json
import pickle

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from dheads_jax import files, progress
from dheads_jax.data import process, sources

NAMESPACE = "talking_faces"
WRITTEN_COUNTER = "written"
SKIPPED_PREFIX = "skipped_"


def pipeline_options(spec: str) -> PipelineOptions:
    """Beam options from TFDS's command-line syntax: "runner=DirectRunner,direct_num_workers=2".

    The workers log warnings and errors only (``default_sdk_harness_log_level=WARNING``)
    unless the spec sets that level or the command runs with ``--verbosity=1``.

    Raises:
      ValueError: an entry is not KEY=VALUE or KEY.
    """
    flags = []
    for entry in spec.split(","):
        entry = entry.strip()
        if not entry:
            continue
        key = entry.split("=", 1)[0]
        if not key.replace("_", "").replace("-", "").isalnum():
            raise ValueError(
                f"bad Beam pipeline option {entry!r}: expected KEY=VALUE, e.g. runner=DirectRunner"
            )
        flags.append(f"--{entry}")
    if not flags:
        raise ValueError("empty Beam pipeline options; e.g. runner=DirectRunner,direct_num_workers=2")
    if not progress.library_logs_shown() and not any(
        f.startswith("--default_sdk_harness_log_level") for f in flags
    ):
        flags.append("--default_sdk_harness_log_level=WARNING")
    return PipelineOptions(flags)


def writer_options(options: PipelineOptions) -> PipelineOptions:
    """Options of stage 2 (TFDS writing the shards): on the DirectRunner, in one process.

    Writing is light next to preparing the clips, and the DirectRunner's worker processes
    would each start TensorFlow and pass every encoded example between processes (18 s of
    22 s for the 11 GRID clips with 2 workers); other runners get the options unchanged.
    """
    everything = options.get_all_options(drop_default=True)
    if everything.get("runner") not in (None, "DirectRunner", "direct"):
        return options
    everything.update(direct_num_workers=1, direct_running_mode="in_memory")
    return PipelineOptions.from_dictionary({k: v for k, v in everything.items() if v is not None})


def _spool_one(task: tuple[int, sources.ClipSource, process.PrepareSettings, str]) -> str:
    """Processes one clip on a worker; returns its outcome as a JSON line."""
    position, source, settings, path = task
    _, reason, message = process.spool_clip((source, settings, path))
    if reason is None:
        beam.metrics.Metrics.counter(NAMESPACE, WRITTEN_COUNTER).inc()
    else:
        beam.metrics.Metrics.counter(NAMESPACE, SKIPPED_PREFIX + reason).inc()
    return json.dumps(dict(position=position, reason=reason, message=message))


def counters(pipeline_result) -> dict[str, int]:
    """The committed values of this module's counters in a finished pipeline."""
    query = pipeline_result.metrics().query(beam.metrics.MetricsFilter().with_namespace(NAMESPACE))
    out: dict[str, int] = {}
    for result in query["counters"]:
        name = result.key.metric.name
        out[name] = out.get(name, 0) + int(result.committed or 0)
    return dict(sorted(out.items()))


def spool(
    tasks: list[tuple[sources.ClipSource, process.PrepareSettings, str]],
    options: PipelineOptions,
    outcome_prefix: str,
) -> tuple[list[tuple[sources.ClipSource, str | None, str]], dict[str, int]]:
    """Stage 1: every clip through ``process.spool_clip`` on the runner's workers.

    Args:
      tasks: (source, settings, spool path) per clip, as the local pool gets them.
      options: Beam pipeline options.
      outcome_prefix: path prefix of the outcome text files (one JSON line per clip).

    Returns:
      (outcomes, counters): (source, reason, message) per clip in task order, reason None
      for a written example; the pipeline's counters.
    """
    pipeline = beam.Pipeline(options=options)
    _ = (
        pipeline
        | "ListClips" >> beam.Create([(i, *task) for i, task in enumerate(tasks)], reshuffle=False)
        # Reshuffle spreads the clips over the workers (a Create alone may stay one bundle).
        | "Spread" >> beam.Reshuffle()
        | "PrepareClip" >> beam.Map(_spool_one)
        | "WriteOutcomes" >> beam.io.WriteToText(outcome_prefix, file_name_suffix=".jsonl")
    )
    result = pipeline.run()
    result.wait_until_finish()
    found: dict[int, tuple[str | None, str]] = {}
    folder = outcome_prefix.rsplit("/", 1)[0]
    for name in files.listdir(folder):
        path = files.join(folder, name)
        if path.startswith(outcome_prefix) and name.endswith(".jsonl"):
            for line in files.read_text(path).splitlines():
                if line.strip():
                    row = json.loads(line)
                    found[row["position"]] = (row["reason"], row["message"])
    missing = [tasks[i][0].relative_path for i in range(len(tasks)) if i not in found]
    if missing:
        raise RuntimeError(
            f"the Beam pipeline reported no outcome for {len(missing)} clips, e.g. {missing[0]}"
        )
    return [(task[0], *found[i]) for i, task in enumerate(tasks)], counters(result)


def _load_example(path: str) -> tuple[str, dict]:
    example = pickle.loads(files.read_bytes(path))
    example["frames"] = [io.BytesIO(b) for b in example["frames"]]
    return example["clip_id"], example


class ReadSpool(beam.PTransform):
    """Stage 2, inside TFDS's pipeline: PBegin -> (clip_id, example) of one split's spool files."""

    def __init__(self, paths: list[str]):
        super().__init__()
        self.paths = list(paths)

    def expand(self, pbegin):
        return (
            pbegin
            | "ListSpooled" >> beam.Create(self.paths, reshuffle=False)
            | "Spread" >> beam.Reshuffle()
            | "LoadExample" >> beam.Map(_load_example)
        )
