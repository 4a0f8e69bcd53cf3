"""The dry run of the driver that finds the times a method asks its noise source about."""

import numpy as np

from seeds.solvers import EDM, GRIDS
from seeds.solvers.dry_run import query_times

SCHEDULE = EDM(t_min=0.05, t_max=80.0)


def test_query_times_are_the_grid_and_every_stage():
    sigmas = SCHEDULE.vs(GRIDS["lambda"](SCHEDULE, 8))
    times = query_times("seeds-3", sigmas, prediction="data")
    assert len(times) == 3 * 8 + 1  # two stages and the end per step, plus the start
    lams = -np.log(sigmas.numpy())
    assert np.all(np.isin(lams, times))
    assert len(query_times("dpm-solver-3", sigmas)) == 9  # no noise: the grid only
