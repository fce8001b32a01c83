"""Shared fixtures: one torch thread (much faster for small models on 2 cores)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def einspace():
    from nas.space import load_space

    return load_space("einspace")


@pytest.fixture(scope="session")
def einspace_samples(einspace):
    """1,000 draws from einspace on 3x28x28 (seed 0), shared by several tests."""
    from nas.sampling import Sampler

    sampler = Sampler(einspace, seed=0)
    return [sampler.sample() for _ in range(1000)]
