import os

import torch

# Each pytest-xdist worker gets one intra-op thread: with one worker per core, torch's default of one
# thread per core oversubscribes the machine, and the small tensor operations the solvers run (a few
# hundred elements) then spend most of their time in thread hand-offs (measured ~20x slower on 2 cores).
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
