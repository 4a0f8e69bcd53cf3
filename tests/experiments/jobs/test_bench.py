"""`seeds bench`'s pieces on tiny sizes: they run, report every source and the targets (the numbers
themselves are measured by `seeds bench`, never asserted here)."""

from __future__ import annotations

import pytest

from seeds.experiments.jobs import bench


def test_time_queries_report_every_source_with_spread_and_targets():
    timing = bench.time_queries((4, 3), repeats=2)
    cases = timing["cases"]
    assert {"BrownianPath", "AdaptiveBrownianPath", "randn_like"} <= set(cases)
    for row in cases.values():
        spread = row["seconds_per_query"]
        assert 0 < spread["min"] <= spread["median"] <= spread["max"] and spread["repeats"] == 2
    assert cases["randn_like"]["ratio_to_randn_like"] == 1.0
    if bench.TORCHSDE in cases:  # the peers are installed by the set-up; the targets need torchsde
        assert set(timing["targets"]) == set(bench.PATH_TYPES)
        assert all(isinstance(met, bool) for checks in timing["targets"].values() for met in checks.values())


def _allocate_64_mib():
    import torch

    torch.ones(8 * 2**20, dtype=torch.float64)


def test_peak_memory_sees_a_known_allocation():
    """A 64 MiB tensor, alive for a moment, in a fresh process set up as for the measurements: the peak
    is that tensor, within page and interpreter noise (a few MiB)."""
    peak = bench.in_fresh_process(bench.peak_during, _allocate_64_mib)
    if peak is None:
        pytest.skip("this kernel does not let a process reset its peak resident set")
    assert abs(peak - 64 * 2**20) <= 4 * 2**20


@pytest.mark.parametrize("source", ["AdaptiveBrownianPath", "randn_like"])
def test_peak_memory_of_a_source_runs_in_a_fresh_process(source):
    peak = bench.in_fresh_process(bench.peak_memory, source, (64, 1024))
    assert peak is None or isinstance(peak, int)
