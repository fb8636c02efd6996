"""Where the bundled samples' split lists are found."""

import os

from dheads_jax.data import cache
from tests import helpers


def test_file_lists_take_only_the_folders_own_splits():
    samples = os.path.join(helpers.ROOT, "data", "samples")
    grid = cache.file_lists(os.path.join(samples, "grid"))
    assert grid == [
        f"test={os.path.join(samples, 'file_list_grid_test.txt')}",
        f"train={os.path.join(samples, 'file_list_grid_train.txt')}",
    ]
    more = cache.file_lists(os.path.join(samples, "grid_more"))
    assert [entry.split("=")[0] for entry in more] == ["test", "train"]
    assert all("file_list_grid_more_" in entry for entry in more)
