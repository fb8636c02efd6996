"""One progress reporter for training, sampling and evaluation (rate, ETA, elapsed time), and
the log set-up every command makes first: its own lines only, library chatter on request."""

from __future__ import annotations

import logging as logging_std
import math
import os
import sys
import time

from absl import flags, logging

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

# Set (unless the environment has them) before TensorFlow is first imported, which every
# command does lazily, after its log set-up: TF_CPP_MIN_LOG_LEVEL=2 drops TensorFlow's C++
# INFO and WARNING lines (CPU features, tf.data's end-of-sequence notes); errors still show.
QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "2"}
# Set at every verbosity, so that no data depend on it. TensorFlow 2.21 prints its oneDNN
# notice (with absl's "before absl::InitializeLog()" warning) at import whatever
# TF_CPP_MIN_LOG_LEVEL says; the input pipeline runs no op that oneDNN speeds up (decoding,
# resizing, gathers: the same bytes either way).
ENVIRONMENT = {"TF_ENABLE_ONEDNN_OPTS": "0"}


def library_logs_shown() -> bool:
    """Whether the user asked for the libraries' lines too (``--verbosity=1`` or more)."""
    return logging.get_verbosity() >= logging.DEBUG


def _installed(path: str) -> bool:
    return f"{os.sep}site-packages{os.sep}" in path or f"{os.sep}dist-packages{os.sep}" in path


class _OwnLinesOnly(logging_std.Filter):
    """Passes the project's records (the package, and the running command's folder: its
    scripts, not a virtualenv in it) and the libraries' warnings and errors, except their
    deprecation notices (TFDS and TensorFlow log those about their own internals)."""

    def __init__(self):
        super().__init__()
        main = getattr(sys.modules.get("__main__"), "__file__", None)
        self.main_dir = os.path.dirname(os.path.abspath(main)) + os.sep if main else None
        self.cache: dict[str, bool] = {}

    def own(self, pathname: str) -> bool:
        if pathname not in self.cache:
            path = os.path.abspath(pathname)
            self.cache[pathname] = path.startswith(_PACKAGE_DIR + os.sep) or bool(
                self.main_dir and path.startswith(self.main_dir) and not _installed(path)
            )
        return self.cache[pathname]

    def filter(self, record):
        if record.levelno >= logging_std.ERROR or self.own(record.pathname):
            return True
        return record.levelno >= logging_std.WARNING and "deprecat" not in record.getMessage().lower()


def quiet_library_logs() -> None:
    """The log set-up of a command, the first thing its ``main`` does (flags are parsed).

    At the default verbosity a command shows only its own lines: the INFO lines of libraries
    (orbax's checkpointing, jax's platform probing, TFDS) are dropped, TensorFlow's C++ logs
    are off (``QUIET_ENVIRONMENT``), and the project's INFO lines carry no
    ``I1204 21:30:12.650888 140045323254656 progress.py:85]`` prefix. Warnings and errors,
    anyone's but the libraries' deprecation notices, still show, with the prefix.
    ``--verbosity=1`` leaves every line as absl and the libraries make it. An explicit
    ``--[no]showprefixforinfo`` and environment variables already set are kept.
    """
    for name, value in ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if library_logs_shown():
        return
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    handler = logging.get_absl_handler()
    if not any(isinstance(f, _OwnLinesOnly) for f in handler.filters):
        handler.addFilter(_OwnLinesOnly())
    if flags.FLAGS.is_parsed() and not flags.FLAGS["showprefixforinfo"].present:
        flags.FLAGS.showprefixforinfo = False


def format_seconds(seconds: float) -> str:
    """``1h02m03s`` or ``2m03s``."""
    s = int(round(max(seconds, 0.0)))
    return f"{s // 3600}h{s // 60 % 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
    """Counts units of work (steps, frames, videos) towards a total and logs the rate and ETA.

    The rate is measured from the first update on, so one-off start-up costs before it
    (compilation of the first step or frame) do not skew the ETA; until a second update gives
    a rate, lines say ``compiling`` in place of the rate and ETA. A line is logged at the
    first update (unless ``begin`` logged one), then at most every ``every_s`` seconds, and
    always when the total is reached.

    Args:
      total: units to do in all.
      unit: their name in log lines ("frames", "steps", "videos").
      label: what is being done, at the start of each log line.
      done: units already done (a resumed job).
      every_s: seconds between log lines; 0 logs every update.
      clock: a time source (for tests).
    """

    def __init__(
        self, total: int, unit: str, label: str = "", done: int = 0, every_s: float = 10.0, clock=None
    ):
        self.total, self.unit, self.label, self.every_s = int(total), unit, label, every_s
        self.clock = clock or time.perf_counter
        self.start = self.clock()
        self.done = int(done)
        self.first = None  # (time, done) at the first update
        self.last_log = None

    @property
    def has_rate(self) -> bool:
        """Whether units were done after the first update (which includes compilation)."""
        return self.first is not None and self.done > self.first[1] and self.clock() > self.first[0]

    @property
    def rate(self) -> float:
        """Units per second since the first update (0 until ``has_rate``)."""
        if not self.has_rate:
            return 0.0
        t0, d0 = self.first
        return (self.done - d0) / (self.clock() - t0)

    @property
    def eta_s(self) -> float:
        """Seconds left at the current rate: 0 when done, NaN (unknown) until ``has_rate``."""
        left = self.total - self.done
        if left <= 0:
            return 0.0
        return left / self.rate if self.has_rate else math.nan

    def speed(self, sep: str = " | ") -> str:
        """``R unit/s | ETA 1m02s`` once there is a rate (``sep`` between them); before,
        ``compiling`` while units are left and "" when there are none."""
        if not self.has_rate:
            return "compiling" if self.done < self.total else ""
        return f"{self.rate:.2f} {self.unit}/s{sep}ETA {format_seconds(self.eta_s)}"

    def begin(self, extra: str = "") -> None:
        """Logs the line of a job that starts (``0/total ... | compiling``); the first update
        then logs only when ``every_s`` has passed."""
        self.last_log = self.clock()
        logging.info("%s", self.line(extra))

    def update(self, count: int = 1, extra: str = "") -> bool:
        """Adds ``count`` units; logs a line when due. Returns whether it logged."""
        self.done += int(count)
        now = self.clock()
        if self.first is None:
            self.first = (now, self.done)
        due = self.last_log is None or now - self.last_log >= self.every_s or self.done >= self.total
        if not due:
            return False
        self.last_log = now
        logging.info("%s", self.line(extra))
        return True

    def line(self, extra: str = "") -> str:
        """``label: done/total unit | extra | rate unit/s | ETA | elapsed``, ``compiling`` in
        place of the rate and ETA until there is one (nothing if the job ended before)."""
        parts = [
            f"{self.label + ': ' if self.label else ''}{self.done}/{self.total} {self.unit}",
            extra,
            self.speed(),
            f"elapsed {format_seconds(self.clock() - self.start)}",
        ]
        return " | ".join(p for p in parts if p)
