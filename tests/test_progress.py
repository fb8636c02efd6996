"""The one progress reporter: "compiling" until a rate exists, then the rate from the first update
on and the ETA; when it logs."""

import math

from absl import logging

from dheads_jax.progress import Progress, format_seconds


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def logged(monkeypatch):
    """The lines Progress logs, collected instead of logged."""
    lines = []
    monkeypatch.setattr(logging, "info", lambda fmt, *args: lines.append(fmt % args))
    return lines


def test_compiling_until_a_rate_then_rate_and_eta_from_the_first_update_on(monkeypatch):
    lines = logged(monkeypatch)
    clock = Clock()
    p = Progress(10, "frames", label="sampling", every_s=5.0, clock=clock)
    clock.t += 30.0  # the first frame includes compilation
    assert p.update(1)  # the first update always logs
    assert not p.has_rate and p.rate == 0.0 and math.isnan(p.eta_s)
    assert lines == ["sampling: 1/10 frames | compiling | elapsed 0m30s"]  # no ETA guessed from compiling
    clock.t += 2.0
    assert not p.update(4)  # 2 s after the last line, under every_s
    assert p.has_rate and p.rate == 2.0 and p.eta_s == 2.5  # 4 frames in the 2 s after the first
    clock.t += 3.0
    assert p.update(3)
    assert lines[-1] == "sampling: 8/10 frames | 1.40 frames/s | ETA 0m01s | elapsed 0m35s"
    clock.t += 0.1
    assert p.update(2)  # the total is reached: always logged
    assert p.eta_s == 0.0
    assert lines[-1] == "sampling: 10/10 frames | 1.76 frames/s | ETA 0m00s | elapsed 0m35s"
    assert p.line(extra="x=1") == "sampling: 10/10 frames | x=1 | 1.76 frames/s | ETA 0m00s | elapsed 0m35s"
    assert p.speed(", ") == "1.76 frames/s, ETA 0m00s"


def test_begin_says_compiling_at_the_start_and_the_first_update_waits_its_turn(monkeypatch):
    lines = logged(monkeypatch)
    clock = Clock()
    p = Progress(74, "frames", label="sampling", every_s=10.0, clock=clock)
    p.begin()
    assert lines == ["sampling: 0/74 frames | compiling | elapsed 0m00s"]
    clock.t += 6.0
    assert not p.update(1)  # 6 s after the start line: the compiled first frame is not due
    clock.t += 4.0
    assert p.update(40)
    assert lines[-1] == "sampling: 41/74 frames | 10.00 frames/s | ETA 0m03s | elapsed 0m10s"


def test_a_job_that_ends_at_its_first_update_has_no_rate_to_show(monkeypatch):
    lines = logged(monkeypatch)
    clock = Clock()
    p = Progress(1, "videos", label="evaluating", every_s=0, clock=clock)
    clock.t += 12.0
    assert p.update()
    assert lines == ["evaluating: 1/1 videos | elapsed 0m12s"]  # neither "compiling" nor a rate
    assert p.eta_s == 0.0 and p.speed() == ""


def test_a_resumed_count_and_every_update_logging(monkeypatch):
    lines = logged(monkeypatch)
    clock = Clock()
    p = Progress(100, "steps", done=40, every_s=0, clock=clock)
    clock.t += 1.0
    assert p.update(10) and p.update(0)
    assert lines == ["50/100 steps | compiling | elapsed 0m01s"] * 2  # 0 units since the first update
    clock.t += 2.0
    assert p.update(5)
    assert lines[-1] == "55/100 steps | 2.50 steps/s | ETA 0m18s | elapsed 0m03s"


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 59.6, 61, 3600, 3725, -3)] == [
        "0m00s",
        "1m00s",
        "1m01s",
        "1h00m00s",
        "1h02m05s",
        "0m00s",
    ]
