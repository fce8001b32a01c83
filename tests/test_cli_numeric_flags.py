"""Every numeric option of every ``nas`` command, given 0, -1, nan, inf, 1e308 and 2**63.

The options are found by walking the command tree, so a new option is covered without an
edit here. Each value is either refused as the command line is read (exit 2, one line
``error: --OPTION ...``, before any work) or listed in ``ACCEPTED`` with what it means, and
then the command runs (cheaply) without a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from nas.cli import app, main
from nas.exceptions import NasError

VALUES = ("0", "-1", "nan", "inf", "1e308", str(2**63))
ARCH = "seq(compute(norm),compute(norm))"
NB201 = ("--space", "nb201", "--dataset", "nb201:cifar10", "--trials", "1")
ONNX = "m.onnx"  # what the export cases write; the rank case exports it first

#: (command, option, value) -> (what the value means, the rest of the command line, the exit
#: codes it may end with). The commands run in a fresh folder; a case that would start long
#: work stops on a later one-line error instead (its message given in place of the codes).
ACCEPTED: dict[tuple[str, str, str], tuple[str, tuple[str, ...], tuple[int, ...] | str]] = {
    ("sample", "-n", "0"): ("draws nothing", (), (0,)),
    ("sample", "--seed", "0"): ("the default seed", ("-n", "1"), (0,)),
    ("export", "--seed", "0"): ("the default seed", (ARCH, "-o", ONNX), (0,)),
    ("export", "--tolerance", "0"): ("exact parity", (ARCH, "-o", ONNX), (0, 1)),
    ("export", "--tolerance", "inf"): ("never fails", (ARCH, "-o", ONNX), (0,)),
    ("rank", "--time-limit", "0"): ("no time limit per file", (ONNX,), (0,)),
    ("search", "--seed", "0"): ("the default seed", NB201, (0,)),
    ("search", "--final-epochs", "0"): ("no final retraining", NB201, (0,)),
    ("search", "--time-budget", "inf"): ("no wall-time cap", NB201, (0,)),
    ("search", "--trial-time", "inf"): ("no CPU-time cap", NB201, (0,)),
    ("search", "--gpus", "0"): ("no GPU (the default)", NB201, (0,)),
    ("train", "--seed", "0"): ("the default seed", (ARCH, "--epochs", "1", "--json"), (0,)),
    ("bench build", "--seed", "0"): (
        "the default seed",
        ("--space", "nb201", "-n", "1", "--workers", "1", "-o", "b"),
        (0,),
    ),
    ("predictor train", "--seed", "0"): (
        "the default seed",
        ("--bench", "nope", "-o", "p"),
        "does not exist",
    ),
    ("predictor train", "--layers", "0"): (
        "no message passing: the op embeddings alone",
        ("--bench", "nope", "-o", "p"),
        "does not exist",
    ),
    ("datasets prepare", "--seed", "0"): ("the default seed", ("unseen:language",), (0,)),
    ("zoo export", "--seed", "0"): ("the default seed", ("moe", "-o", ONNX), (0,)),
}


def _leaves(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """(command path, command) of every command of the tree under ``group``."""
    subs = getattr(group, "commands", None)
    if subs is None:
        yield " ".join(path), group
        return
    for name, cmd in sorted(subs.items()):
        yield from _leaves(cmd, (*path, name))


def _is_number(param: Any) -> bool:
    """Whether a parameter takes numbers (int, float, or a list or tuple of them)."""
    ann = param.type_descriptor.annotation
    return ann in (int, float) or any(a in (int, float) for a in getattr(ann, "__args__", ()))


def _options() -> list[tuple[str, Any, Any]]:
    """(command path, command, parameter) of every numeric parameter of every command."""
    root = typer.main.get_command(app)
    return [(path, cmd, p) for path, cmd in _leaves(root) for p in cmd.params if _is_number(p)]


OPTIONS = _options()
CASES = [(path, p.opts[0], value) for path, _, p in OPTIONS for value in VALUES]


def _required(cmd: Any, skip: Any) -> list[str]:
    """Placeholders for the parameters ``cmd`` requires, ``skip`` excepted."""
    args: list[str] = []
    for p in cmd.params:
        if p.required and p is not skip:
            args += ["X"] if p.param_type_name == "argument" else [p.opts[0], "X"]
    return args


def _nas(*args: str) -> tuple[int, str, str, BaseException | None]:
    """``nas ARGS`` run in-process through the entry point, as CliRunner isolates a
    command: (exit code, stdout, stderr, the exception that left ``main``)."""
    runner = CliRunner()
    argv, sys.argv = sys.argv, ["nas", *args]
    code, exc = 0, None
    try:
        with runner.isolation() as (out, err, _):
            try:
                main()
            except BaseException as e:  # what left main() is the result
                exc = e
                code = e.code if isinstance(e, SystemExit) and isinstance(e.code, int) else 1
            sys.stdout.flush()
            sys.stderr.flush()
            return code, out.getvalue().decode(), err.getvalue().decode(), exc
    finally:
        sys.argv = argv


def test_the_walk_finds_the_numeric_options() -> None:
    found = {(path, p.opts[0]) for path, _, p in OPTIONS}
    assert len(found) >= 45  # a walk that finds nothing must not pass
    assert {("train", "--seed"), ("search", "--cpus"), ("rank", "--max-size")} <= found
    stale = {(c, o) for c, o, _ in ACCEPTED} - found
    assert not stale, f"ACCEPTED names options that no command has: {stale}"


@pytest.mark.parametrize(("path", "option", "value"), CASES)
def test_numeric_flag_is_refused_in_one_line_or_means_something(
    path: str, option: str, value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cmd, param = next((c, p) for pa, c, p in OPTIONS if pa == path and p.opts[0] == option)
    accepted = ACCEPTED.get((path, option, value))
    if accepted is None:
        # The value must fail as the command line is read, so nothing can start.
        args = [*_required(cmd, param), option, value]
        try:
            cmd.make_context(path, list(args))
        except NasError:
            pass
        except Exception as e:  # anything else is the failure to report
            pytest.fail(f"nas {path} {option} {value}: {type(e).__name__}: {e}")
        else:
            pytest.fail(
                f"nas {path} {option} {value} is accepted as the command line is read: "
                "refuse it with the option's range, or list it in ACCEPTED with its meaning"
            )
        code, out, err, exc = _nas(*path.split(), *args)
        assert code == 2 and isinstance(exc, SystemExit), (code, out, err, exc)
        assert (
            out == "" and err.startswith(f"error: {option} must be ") and err.count("\n") == 1
        ), err
        assert "Traceback" not in out + err
        return
    _why, rest, outcome = accepted
    if path == "rank":  # a file to rank
        assert _nas("export", ARCH, "-o", ONNX)[0] == 0
    code, out, err, exc = _nas(*path.split(), option, value, *rest)
    assert "Traceback" not in out + err
    assert exc is None or isinstance(exc, SystemExit), repr(exc)
    if isinstance(outcome, str):  # stopped on a later check, not on this value
        assert code == 2 and outcome in err and err.count("\n") == 1, err
    else:
        assert code in outcome, (code, out, err)
