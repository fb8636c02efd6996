"""One progress reporter for training, sampling and evaluation: rate, ETA, elapsed time."""

from __future__ import annotations

import logging as logging_std
import time

from absl import logging

# Libraries whose INFO lines drown the progress lines of the commands.
NOISY_LIBRARIES = ("/orbax/", "/tensorflow_datasets/")


class _QuietLibraries(logging_std.Filter):
    def filter(self, record):
        return record.levelno >= logging_std.WARNING or not any(p in record.pathname for p in NOISY_LIBRARIES)


def quiet_library_logs() -> None:
    """Drops INFO lines of orbax and TFDS internals from absl's handler; warnings and errors still show."""
    logging.get_absl_handler().addFilter(_QuietLibraries())


def format_seconds(seconds: float) -> str:
    """``1h02m03s`` or ``2m03s``."""
    s = int(round(max(seconds, 0.0)))
    return f"{s // 3600}h{s // 60 % 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
    """Counts units of work (steps, frames, videos) towards a total and logs the rate and ETA.

    The rate is measured from the first update on, so one-off start-up costs before it
    (compilation of the first step or frame) do not skew the ETA. A line is logged at most
    every ``every_s`` seconds, and always when the total is reached.

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
    def rate(self) -> float:
        """Units per second since the first update (0 before a second update)."""
        if self.first is None:
            return 0.0
        t0, d0 = self.first
        return (self.done - d0) / max(self.clock() - t0, 1e-9)

    @property
    def eta_s(self) -> float:
        """Seconds left at the current rate (from the time to the first update before there is a rate)."""
        left = self.total - self.done
        if left <= 0:
            return 0.0
        if self.rate > 0:
            return left / self.rate
        per_unit = (self.clock() - self.start) / max(self.done, 1)
        return left * per_unit

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
        """``label: done/total unit | rate unit/s | ETA | elapsed`` (plus ``extra``)."""
        parts = [
            f"{self.label + ': ' if self.label else ''}{self.done}/{self.total} {self.unit}",
            f"{self.rate:.2f} {self.unit}/s",
            f"ETA {format_seconds(self.eta_s)}",
            f"elapsed {format_seconds(self.clock() - self.start)}",
        ]
        if extra:
            parts.insert(1, extra)
        return " | ".join(parts)
