"""Extension without guessing: a grammar's ``import`` finds an op module beside the grammar
or in the current folder with no PYTHONPATH, says where it looked when it cannot, and
``check_op`` / ``nas ops --check`` name a user's op by module or grammar and say each check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

NAS = str(Path(sys.executable).parent / "nas")

OPS = '''
from nas.ops import Op, register_op


@register_op
class {cls}(Op):
    """Multiplies its input by a constant (a user's op, beside the grammar)."""

    name = "{name}"
    params = {{"by": (float, 2.0)}}

    def infer(self, x):
        return x

    def build(self, x):
        import torch

        class Times(torch.nn.Module):
            def forward(self, t, by=self.by):
                return t * by

        return Times()
'''


def _grammar(folder: Path, module: str, op: str) -> Path:
    """A grammar importing ``module`` and drawing op ``op``, written in ``folder``."""
    path = folder / "mine.pcfg"
    path.write_text(
        f'import "{module}"\nstart network\n'
        f"network -> seq(compute({op}(by=0.5|3.0)), compute(linear(out=8|16)))\n"
    )
    return path


def _package(folder: Path, name: str, op: str, init: bool) -> None:
    """``name/ops.py`` defining op ``op``, with or without ``name/__init__.py``."""
    (folder / name).mkdir(parents=True)
    if init:
        (folder / name / "__init__.py").write_text("")
    (folder / name / "ops.py").write_text(OPS.format(cls=op.title(), name=op))


def _nas(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``nas ARGS`` run from ``cwd`` as a user would: a fresh process, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [NAS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("init", [True, False], ids=["package", "namespace-package"])
def test_a_grammar_finds_its_op_module_beside_it_from_any_folder(
    tmp_path: Path, init: bool
) -> None:
    """``import "myops.ops"`` with myops/ beside the grammar: run from there and elsewhere."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    elsewhere.mkdir()
    _package(project, "myops", "times", init)
    grammar = _grammar(project, "myops.ops", "times")
    for cwd, space in ((project, grammar.name), (elsewhere, str(grammar))):
        run = _nas("sample", "--space", space, "-n", "2", "--seed", "0", cwd=cwd)
        assert run.returncode == 0, run.stderr
        archs = [json.loads(line)["arch"] for line in run.stdout.splitlines()]
        assert len(archs) == 2 and all("times(by=" in a for a in archs), run.stdout


def test_a_grammar_finds_an_op_module_in_the_current_folder(tmp_path: Path) -> None:
    """A module in the folder the command runs from, the grammar in another folder."""
    (tmp_path / "grammars").mkdir()
    (tmp_path / "cwdops.py").write_text(OPS.format(cls="Twice", name="twice"))
    grammar = _grammar(tmp_path / "grammars", "cwdops", "twice")
    run = _nas("sample", "--space", str(grammar), "-n", "1", cwd=tmp_path)
    assert run.returncode == 0 and "twice(by=" in run.stdout, run.stderr


def test_a_missing_op_module_is_named_with_the_folders_searched(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "elsewhere").mkdir()
    grammar = _grammar(tmp_path / "project", "nosuchops_q7.ops", "times")
    run = _nas("sample", "--space", str(grammar), cwd=tmp_path / "elsewhere")
    assert run.returncode == 2 and run.stdout == "", run.stdout
    assert run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith(f"error: {grammar}:1:8: cannot import op module 'nosuchops_q7")
    for folder in ("project", "elsewhere"):
        assert str(tmp_path / folder) in run.stderr, run.stderr
    assert "sys.path" in run.stderr


def test_an_op_modules_folders_leave_sys_path_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The grammar's folder is on sys.path only while its module is imported."""
    from nas.ops import is_op, load_op_module

    _package(tmp_path, "besideops_q7", "thrice", init=False)
    monkeypatch.chdir(tmp_path / "besideops_q7")  # the current folder does not hold it
    before = list(sys.path)
    load_op_module("besideops_q7.ops", near=[tmp_path])
    assert sys.path == before and is_op("thrice")


def _user_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, op: str) -> None:
    """Op ``op`` in ``module``.py in the current folder (a fresh import)."""
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(OPS.format(cls=op.title(), name=op)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, module, raising=False)


def test_check_op_imports_a_users_op_and_says_each_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from nas.exceptions import UnknownNameError
    from nas.testing import check_op

    with pytest.raises(UnknownNameError, match=r"check_op\('MODULE:quad_q7'\)"):
        check_op("quad_q7")
    _user_op(tmp_path, monkeypatch, "quadops_q7", "quad_q7")
    grammar = _grammar(tmp_path, "quadops_q7", "quad_q7")
    passed = check_op("quadops_q7:quad_q7", grammar=grammar)
    out = capsys.readouterr().out
    checks = ["docstring", "parameters", "examples", "shape rule [1]", "module runs [1]"]
    assert [name for name, _ in passed][:5] == checks
    assert out.startswith("op 'quad_q7' (quadops_q7.Quad_Q7)\n"), out
    for name in [*checks, "parameter count [1]"]:
        assert f"  ok    {name}: " in out, out
    assert f"from draws of {grammar}" in out and "by: float = 2.0" in out
    assert check_op("quad_q7", module="quadops_q7", grammar=grammar, echo=None) == passed
    assert capsys.readouterr().out == ""


def test_nas_ops_check_runs_the_contract_on_a_users_op(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nas_cli
) -> None:
    _user_op(tmp_path, monkeypatch, "cliops_q7", "cli_q7")
    grammar = _grammar(tmp_path, "cliops_q7", "cli_q7")
    code, out, err = nas_cli("ops", "cli_q7", "--check", "--grammar", str(grammar))
    assert code == 0, err
    assert out.startswith("op 'cli_q7' (cliops_q7.Cli_Q7)") and "parameter count [2]" in out
    code, out, err = nas_cli("ops", "cli_q7", "--module", "cliops_q7")
    assert code == 0 and out.startswith("cli_q7 ") and "params: by" in out, err
    code, out, err = nas_cli("ops", "nothing_q7", "--check")
    assert code == 2 and "--module" in err and "--grammar" in err, err


def test_nas_ops_check_fails_an_op_that_breaks_its_contract(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nas_cli
) -> None:
    liar = OPS.replace("return x\n", "return (x[0].with_shape(x[0].shape[:-1] + (5,)),)\n")
    (tmp_path / "liarops_q7.py").write_text(liar.format(cls="Liar", name="liar_q7"))
    monkeypatch.chdir(tmp_path)
    grammar = _grammar(tmp_path, "liarops_q7", "liar_q7")
    code, out, _ = nas_cli("ops", "liar_q7", "--check", "--grammar", str(grammar))
    assert code == 1 and "  FAIL  " in out and "1 of 1 ops broke their contract" in out, out
