"""Test-session set-up."""

import os

import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one intra-op thread per xdist worker: on 2 cores, two workers with 2 threads each thrash
    torch.set_num_threads(1)
