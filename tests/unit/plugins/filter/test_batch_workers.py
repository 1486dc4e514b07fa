"""batch_workers: a batch size read as Ansible's serial reads it."""

from __future__ import annotations

import pytest
from ansible_collections.dataplatform.dask.plugins.filter.batch_workers import batch_workers


@pytest.mark.parametrize("size, workers", [
    # What rolling_upgrade.yml refuses on three workers (0, or all of them) ...
    ("0", 0), ("3", 3), ("100%", 3), (3, 3),
    # ... what it accepts ...
    ("1", 1), (" 2 ", 2), ("50%", 1), ("66.7%", 2), ("10%", 1),
    # ... and what is neither a number nor a percentage.
    ("two", 0), ("-1", 0), ("1.5", 0), ("0%", 0), ("%", 0), ("", 0),
])
def test_sizes_on_three_workers(size, workers):
    assert batch_workers(size, 3) == workers


def test_a_percentage_of_a_larger_fleet_rounds_down():
    assert batch_workers("25%", 10) == 2
