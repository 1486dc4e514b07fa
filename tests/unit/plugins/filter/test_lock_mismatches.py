"""lock_mismatches: what a wheelhouse lock lacks against the environment's package list."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.dataplatform.dask.plugins.filter.lock_mismatches import lock_mismatches

LOCK = """# Environment 2026.8.0-abc (Dask 2026.8.0, Python 3.11): every package
dask==2026.8.0
distributed==2026.8.0
pandas==3.1.1
prometheus_client==0.26.0
python_dateutil==2.9.0.post0

"""


def test_a_lock_that_holds_every_package_at_its_pin_has_no_mismatch():
    assert lock_mismatches(LOCK, ["dask[distributed,dataframe]==2026.8.0", "pandas==3.1.1", "distributed"]) == []


def test_names_compare_as_pip_compares_them():
    assert lock_mismatches(LOCK, ["Prometheus-Client==0.26.0", "python.dateutil"]) == []


def test_a_missing_package_and_another_version_are_each_named():
    assert lock_mismatches(LOCK, ["pandas==3.0.0", "s3fs==2026.9.0", "dask"]) == [
        "pandas is 3.1.1 in the lock, not 3.0.0",
        "s3fs is not in the lock",
    ]


def test_a_range_is_satisfied_by_presence_only():
    # The lock was resolved from the list: pip already applied the range.
    assert lock_mismatches(LOCK, ["pandas>=2", "tabulate<1"]) == ["tabulate is not in the lock"]


def test_an_empty_lock_lacks_everything():
    assert lock_mismatches("", ["dask==2026.8.0"]) == ["dask is not in the lock"]


@pytest.mark.parametrize("lock", ["dask 2026.8.0\n", "==1.0\n"])
def test_a_malformed_lock_line_is_an_error(lock):
    with pytest.raises(AnsibleFilterError, match="line 1 of the lock is not name==version"):
        lock_mismatches(lock, ["dask"])


def test_a_requirement_that_is_not_pip_syntax_is_an_error():
    with pytest.raises(AnsibleFilterError, match="not a requirement in pip syntax"):
        lock_mismatches(LOCK, ["-e ./local"])
