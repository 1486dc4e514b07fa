# -*- coding: utf-8 -*-
"""The arithmetic and the reading of playbook results of the benchmark (scripts/bench_report.py)."""

from __future__ import annotations

import bench_report as bench
import pytest


def task(name, start, end, **hosts):
    return {"task": {"name": name, "duration": {"start": start, "end": end}}, "hosts": hosts}


T0, T1, T3 = "2026-11-22T12:00:00.000000Z", "2026-11-22T12:00:01.500000Z", "2026-11-22T12:00:03.000000Z"
RUN = {"plays": [
    {"tasks": [
        task("Gather", T0, T1, a={"action": "gather_facts", "changed": False}, b={"action": "gather_facts"}),
        task("Install OS packages", T1, T3, a={"action": "ansible.builtin.apt", "changed": True},
             b={"action": "ansible.builtin.apt", "changed": True}),
        task("Install requirements", T0, T1, a={"action": "ansible.builtin.command", "changed": True,
                                                "cmd": ["/opt/v/bin/pip", "install", "dask"]}),
        task("Write config", T0, T1, a={"action": "ansible.builtin.template", "changed": True}),
    ]},
    {"tasks": [
        task("Install OS packages", T0, T1, a={"action": "ansible.builtin.apt", "changed": True},
             b={"action": "ansible.builtin.apt", "changed": False}),
        task("Install requirements", T0, T1, a={"action": "ansible.builtin.command", "changed": True,
                                                "cmd": "/opt/v/bin/pip install dask"}),
        task("Skipped", T0, T0),
    ]},
]}


def test_median_ignores_missing_values():
    assert bench.median([3.0, None, 1.0, 2.0]) == 2.0
    assert bench.median([None]) is None


@pytest.mark.parametrize("value, floors, expected", [
    (10.0, [2.0, 3.0], 2.0),
    (10.0, [None, 3.0], None),
    (None, [1.0], None),
    (10.0, [0.0], None),
    (10.0, [], None),
])
def test_ratio_divides_by_the_sum_of_the_floors(value, floors, expected):
    assert bench.ratio(value, floors) == expected


def rounds():
    def one(n, rep, cold, floor, kept=0.8, lost=0):
        return {"workers": n, "rep": rep, "installed_twice": [], "changed": {"no_change": []},
                "seconds": {"cold_deploy": cold, "ansible_floor": floor, "install_floor": 10.0, "no_change": 2 * floor,
                            "check": floor, "scale_out": 20.0, "ansible_floor_1": 1.0},
                "upgrade": {"throughput_kept": kept, "min_running_workers": n - lost, "results_lost": lost,
                            "tasks_failed": 0}}
    return [one(2, 1, 30.0, 2.0), one(2, 2, 40.0, 3.0, kept=0.6, lost=1), one(2, 3, 35.0, 2.5, kept=0.7),
            one(8, 1, 70.0, 5.0)]


def test_medians_ratios_and_growth():
    medians = bench.medians_by_size(rounds())
    assert medians[2]["cold_deploy"] == 35.0
    assert medians[2]["ansible_floor"] == 2.5
    ratios = bench.ratios_by_size(medians)
    assert ratios[2]["cold_deploy"] == pytest.approx(35.0 / 12.5)
    assert ratios[2]["no_change"] == pytest.approx(2.0)
    assert ratios[2]["scale_out"] == pytest.approx(20.0 / 11.0)
    assert bench.growth(medians, "cold_deploy") == pytest.approx(2.0)
    assert bench.growth({2: medians[2]}, "cold_deploy") is None


def test_goals_report_met_and_missed():
    medians = bench.medians_by_size(rounds())
    report = {goal: (value, met) for goal, value, met in bench.goals(medians, bench.ratios_by_size(medians), rounds())}
    assert report["no-change re-run <= 4 x Ansible floor (N=2)"] == ("2.00x", True)
    assert report["cold deploy <= 2 x (install + Ansible floor) (N=2)"] == ("2.80x", False)
    assert report["growth N=2->8 of scale_out <= 2x"] == ("1.00x", True)
    assert report["no task reports changed on a no-change re-run"] == ("none", True)


def test_changed_tasks_name_the_hosts():
    assert bench.changed_tasks(RUN) == [
        "Install OS packages (a, b)", "Install requirements (a)", "Write config (a)"]


def test_installed_twice_counts_install_actions_per_host():
    assert bench.installed_twice(RUN) == [
        "a: ansible.builtin.apt 2 times", "a: ansible.builtin.command 2 times"]


def test_task_seconds_sum_by_name_longest_first():
    assert bench.task_seconds(RUN) == [(3.0, "Install OS packages"), (3.0, "Install requirements"),
                                       (1.5, "Gather"), (1.5, "Write config"), (0.0, "Skipped")]


def test_throughput_counts_completed_tasks_per_second_within_the_window():
    timeline = [(100.0, 3, 0), (101.0, 3, 50), (102.0, 2, 80), (104.0, 3, 120), (105.0, 3, 200)]
    assert bench.throughput(timeline, 100.0, 102.0) == pytest.approx(40.0)
    assert bench.throughput(timeline, 102.0, 104.0) == pytest.approx(20.0)
    assert bench.throughput(timeline, 104.5, 110.0) is None


def test_upgrade_figures_read_the_client_session_report():
    report = {"timeline": [(0.0, 3, 0), (15.0, 3, 1500), (25.0, 2, 2000), (35.0, 3, 2500)],
              "min_running_workers": 2, "held": 24, "lost": {"scattered-0-0": "KeyError"}, "failed": 0}
    figures = bench.upgrade_figures(report, 15.0, 35.0)
    assert figures["throughput_before"] == pytest.approx(100.0)
    assert figures["throughput_during"] == pytest.approx(50.0)
    assert figures["throughput_kept"] == pytest.approx(0.5)
    assert (figures["min_running_workers"], figures["results_held"], figures["results_lost"]) == (2, 24, 1)


def test_upgrade_by_size_takes_the_median_throughput_and_the_worst_losses():
    upgrade = bench.upgrade_by_size(rounds())
    assert upgrade[2] == {"throughput_kept": 0.7, "min_running_workers": 1, "results_lost": 1, "tasks_failed": 0}
    assert upgrade[8]["min_running_workers"] == 8
    assert bench.upgrade_by_size([dict(rounds()[0], upgrade=None)])[2]["throughput_kept"] is None


def test_format_table_has_a_row_per_figure_and_ratio():
    medians = bench.medians_by_size(rounds())
    table = bench.format_table(medians, bench.ratios_by_size(medians), {"repeat": 3})
    lines = table.splitlines()
    assert "N=8/N=2" in lines[0]
    assert len(lines) == 1 + len(bench.FIGURES) + sum(1 for f in bench.FIGURES if f[2])
    assert any(line.startswith("cold deploy") and line.rstrip().endswith("2.00x") for line in lines)
    with_upgrade = bench.format_table(medians, bench.ratios_by_size(medians), {"repeat": 3},
                                      upgrade=bench.upgrade_by_size(rounds())).splitlines()
    assert len(with_upgrade) == len(lines) + len(bench.UPGRADE_FIGURES)
    assert any("throughput kept" in line and "70%" in line and "80%" in line for line in with_upgrade)


def test_play_seconds_sums_the_plays_of_one_name():
    def play(name, start, end):
        return {"play": {"name": name, "duration": {"start": start, "end": end}}, "tasks": []}

    run = {"plays": [play("Stage", T0, T1), play(bench.RESTART_PLAY + ", a batch", T1, T3),
                     play(bench.RESTART_PLAY + ", a batch", T0, T1), play("Scheduler", T0, T3)]}
    assert bench.play_seconds(run, bench.RESTART_PLAY) == pytest.approx(3.0)
    assert bench.play_seconds(run, "nothing") == 0.0


def test_archive_of_finds_the_archive_built_from_the_package_list(tmp_path):
    for name, packages in (("dask-1.0-aaa-py3.11.tar", "dask==1.0 extra==2 --platform=x"),
                           ("dask-1.0-bbb-py3.11.tar", "dask==1.0 --platform=x --python-version=3.11")):
        (tmp_path / name).write_text("")
        (tmp_path / (name + ".requirements")).write_text(packages)
    assert bench.archive_of(tmp_path, "1.0", ["dask==1.0"], "3.11").name == "dask-1.0-bbb-py3.11.tar"
    with pytest.raises(SystemExit, match="no wheelhouse archive of Dask 2.0"):
        bench.archive_of(tmp_path, "2.0", ["dask==2.0"], "3.11")
