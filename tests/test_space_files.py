"""What a grammar or a space file may reach: its own folder's grammars, modules that stay
off stdout, and nothing that is not a grammar."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

GRAMMAR = "start a\na -> seq(compute(norm), compute(norm))\n"


def test_a_module_a_grammar_imports_prints_nothing_on_stdout(
    nas_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "noisy_ops_7a.py").write_text('print("hello from an op module")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "noisy_ops_7a", raising=False)
    grammar = tmp_path / "noisy.pcfg"
    grammar.write_text('import "noisy_ops_7a"\n' + GRAMMAR)
    code, out, err = nas_cli("sample", "--space", str(grammar), "-n", "2")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and all(json.loads(line)["arch"] for line in lines), out
    assert "hello from an op module" in err  # kept, on stderr


@pytest.mark.parametrize("ref", ["/etc/passwd", "notes.txt", "missing.pcfg"])
def test_a_space_file_names_only_grammars(nas_cli, tmp_path: Path, ref: str) -> None:
    """A grammar that is not a .pcfg, or is not there, is refused in one line naming it and
    the space file, before it is read (notes.txt would parse as a grammar)."""
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "notes.txt").write_text(GRAMMAR)
    space = tmp_path / "spaces" / "mine.toml"
    space.write_text(f'grammar = "{ref}"\n')
    code, out, err = nas_cli("sample", "--space", str(space), "-n", "1")
    assert code == 2 and out == "", out
    assert err.startswith(f"error: {space}: ") and err.count("\n") == 1, err
    assert repr(ref) in err


def test_a_grammar_that_does_not_parse_is_named(nas_cli, tmp_path: Path) -> None:
    (tmp_path / "bad.pcfg").write_text("start a\na -> seq(compute(norm), modul)\n")
    space = tmp_path / "mine.toml"
    space.write_text('grammar = "bad.pcfg"\n')
    code, _, err = nas_cli("sample", "--space", str(space))
    assert code == 2 and err.startswith(f"error: {tmp_path / 'bad.pcfg'}:2:25: "), err


def test_a_space_file_finds_its_grammar_beside_it_from_any_folder(
    nas_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beside the space file first (even with a built-in grammar's name), then built in."""
    folder = tmp_path / "spaces"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "mine.pcfg").write_text(GRAMMAR)
    (folder / "einspace.pcfg").write_text(GRAMMAR.replace("norm", "leakyrelu"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for ref, arch in (
        ("sub/mine.pcfg", "seq(compute(norm),compute(norm))"),
        ("einspace.pcfg", "seq(compute(leakyrelu),compute(leakyrelu))"),
    ):
        (folder / "s.toml").write_text(f'grammar = "{ref}"\n')
        code, out, err = nas_cli("sample", "--space", "../spaces/s.toml", "-n", "1")
        assert code == 0, err
        assert json.loads(out)["arch"] == arch
    (folder / "einspace.pcfg").unlink()  # a bare name not beside it: the built-in grammar
    code, out, err = nas_cli("sample", "--space", "../spaces/s.toml", "-n", "1")
    assert code == 0 and json.loads(out)["arch"] != "seq(compute(leakyrelu),compute(leakyrelu))", (
        err
    )
