"""The einspace trainer and the zoo give the numbers recorded before their loops merged."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from loop_reference import EINSPACE, PATH, ZOO, dataset, einspace_run, zoo_run

REFERENCE = json.loads(PATH.read_text())


#: Floats agree to this relative tolerance. Convolutions take CPU-specific kernels (oneDNN
#: picks them by instruction set): on another x86 CPU the recorded conv runs differ by up to
#: 3e-4 relative after a few steps, while a change to the loop (a step more or less, another
#: schedule) moves them by percents. Counts (steps, epochs) must match exactly.
REL = 2e-3


def _close(got: Any, want: Any, where: str, rel: float = REL) -> None:
    """Equal structure; floats within ``rel`` (relative) or 1e-6 absolute."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), where
        for k in want:
            _close(got[k], want[k], f"{where}.{k}", rel)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _close(g, w, f"{where}[{i}]", rel)
    elif isinstance(want, float) and isinstance(got, float):
        # an accuracy counts samples: those float differences may flip one of the 128
        slack = 1.01 / 128 if where.endswith("accuracy") else 1e-6
        assert math.isclose(got, want, rel_tol=rel, abs_tol=slack), f"{where}: {got} != {want}"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


@pytest.fixture(scope="module")
def ds():
    return dataset()


@pytest.mark.parametrize("name", sorted(EINSPACE))
def test_einspace_training_is_unchanged(name: str, ds) -> None:
    _close(json.loads(json.dumps(einspace_run(name, ds))), REFERENCE["einspace"][name], name)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_training_is_unchanged(name: str) -> None:
    got = json.loads(json.dumps(zoo_run(name)))
    want = REFERENCE["zoo"][name]
    # The running training loss is summed in float32 now (as the einspace trainer does),
    # where the zoo loop summed Python floats: the same numbers up to float rounding.
    for g, w in zip(got["history"], want["history"], strict=True):
        assert g.pop("train_loss") == pytest.approx(w.pop("train_loss"), rel=1e-5)
    _close(got, want, name)
