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


@pytest.fixture
def nas_cli(capsys, monkeypatch):
    """Run the ``nas`` command in-process: ``nas_cli(*args) -> (exit code, stdout, stderr)``."""
    import sys

    from nas.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["nas", *args])
        code = 0
        try:
            main()
        except SystemExit as e:
            code = int(e.code or 0)
        cap = capsys.readouterr()
        return code, cap.out, cap.err

    return run
