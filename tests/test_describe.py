"""run_train.py --describe: exact sizes without allocating, FLOPs, memory."""

import pytest

from configs import crema, test
from dheads_jax import describe
from tests import helpers


def test_describe_reports_exact_sizes_and_a_plausible_flop_count():
    d = describe.describe(crema.get_config())
    assert d["parameters"] == 215_748_614 and d["tensors"] == 324 and d["input_channels"] == 12
    assert d["params_mib_fp32"] == pytest.approx(215_748_614 * 4 / 2**20)
    assert d["params_mib_bf16"] == pytest.approx(d["params_mib_fp32"] / 2)
    # A 3x3 conv 256->256 at 128 px alone is 19.3 GFLOP; the whole net is ~50 of those.
    assert 500 < d["forward_gflops"] < 2000
    small = describe.describe(test.get_config())
    assert small["forward_gflops"] < d["forward_gflops"] / 1000


@pytest.mark.slow
def test_run_train_describe_prints_and_exits_zero():
    proc = helpers.run_command("run_train.py", "--config=configs/lrw.py", "--describe", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "215,739,398 in 324 tensors" in proc.stdout
    assert "input channels" in proc.stdout and " 8\n" in proc.stdout
