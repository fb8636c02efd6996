"""The one progress reporter: rate after the first update, ETA, when it logs."""

from dheads_jax.progress import Progress, format_seconds


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_rate_and_eta_leave_the_first_update_out():
    clock = Clock()
    p = Progress(10, "frames", label="sampling", every_s=5.0, clock=clock)
    clock.t += 30.0  # the first frame includes compilation
    assert p.update(1)  # the first update always logs
    assert p.rate == 0.0 and p.eta_s == 9 * 30.0  # no rate yet: the first frame's time per frame
    clock.t += 2.0
    assert not p.update(4)  # 2 s after the last line, under every_s
    assert p.rate == 2.0 and p.eta_s == 2.5
    clock.t += 3.0
    assert p.update(3)
    assert p.line() == "sampling: 8/10 frames | 1.40 frames/s | ETA 0m01s | elapsed 0m35s"
    clock.t += 0.1
    assert p.update(2)  # the total is reached: always logged
    assert p.eta_s == 0.0
    assert "| x=1 |" in p.line(extra="x=1")


def test_a_resumed_count_and_every_update_logging():
    clock = Clock()
    p = Progress(100, "steps", done=40, every_s=0, clock=clock)
    clock.t += 1.0
    assert p.update(10) and p.update(0)
    assert p.line().startswith("50/100 steps")


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 59.6, 61, 3600, 3725, -3)] == [
        "0m00s",
        "1m00s",
        "1m01s",
        "1h00m00s",
        "1h02m05s",
        "0m00s",
    ]
