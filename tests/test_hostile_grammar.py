"""Hostile grammar files, includes, ``@FILE`` arguments and space TOMLs.

Each fails fast with a one-line project error naming where (the include line for an
include), and nothing reads a FIFO, a directory or ``/dev/zero`` forever.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from nas.dsl import load_grammar, parse_arch
from nas.dsl.files import MAX_TEXT_BYTES, UnreadableFileError, read_text
from nas.dsl.fuzz import choice_explosion, deep_seq
from nas.dsl.loader import MAX_ALTERNATIVES, MAX_INCLUDES
from nas.exceptions import ConfigurationError, GrammarError
from nas.space import SearchSpace, load_space


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the block runs longer than ``seconds``."""

    def fail(*_: object) -> None:
        raise AssertionError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def specials(tmp_path: Path) -> Path:
    """A folder of things that are not regular files, behind .pcfg names."""
    os.mkfifo(tmp_path / "fifo.pcfg")
    (tmp_path / "dir.pcfg").mkdir()
    (tmp_path / "zero.pcfg").symlink_to("/dev/zero")
    (tmp_path / "big.pcfg").write_text("#" * (MAX_TEXT_BYTES + 1))
    (tmp_path / "latin1.pcfg").write_bytes(b"a -> compute(norm)\n# caf\xe9\n")
    return tmp_path


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("fifo", "it is a FIFO, not a regular file"),
        ("dir", "it is a directory, not a regular file"),
        ("zero", "it is a character device, not a regular file"),
        ("big", f"it is larger than {MAX_TEXT_BYTES:,} bytes"),
        ("latin1", "not valid UTF-8 (byte 0xe9 at line 2, column 6)"),
    ],
)
def test_include_reads_only_bounded_regular_utf8_files(
    specials: Path, name: str, reason: str
) -> None:
    main = specials / f"inc_{name}.pcfg"
    main.write_text(f'start a\ninclude "{name}.pcfg"\na -> compute(norm)\n')
    with deadline(10), pytest.raises(GrammarError) as info:
        load_grammar(main)
    err = info.value
    assert (err.path, err.line, err.column) == (str(main), 2, 9)  # the include line
    assert f"cannot include '{name}.pcfg': {reason}" in str(err)
    # The same file given directly is refused too, naming the file.
    with deadline(10), pytest.raises(GrammarError, match="cannot read grammar file"):
        load_grammar(specials / f"{name}.pcfg")


def test_read_text_bounds_what_it_reads_whatever_st_size_says(specials: Path) -> None:
    with deadline(5), pytest.raises(UnreadableFileError, match="character device"):
        read_text(specials / "zero.pcfg")
    assert read_text(specials / "big.pcfg", limit=MAX_TEXT_BYTES + 1).startswith("#")
    with pytest.raises(UnreadableFileError, match="no such file"):
        read_text(specials / "missing.pcfg")


def test_choice_explosion_is_refused_quickly() -> None:
    src = choice_explosion(10, 6)  # 10**6 alternatives once expanded
    t = time.perf_counter()
    with pytest.raises(GrammarError) as info:
        load_grammar("explode.pcfg", src)
    assert time.perf_counter() - t < 2
    assert f"more than {MAX_ALTERNATIVES:,} alternatives" in str(info.value)
    assert "1,000,000 from this one" in str(info.value)
    assert info.value.line == 2
    # A large but reasonable one (10**4) still loads.
    assert len(load_grammar("ok.pcfg", choice_explosion(10, 4)).rules["net"].alts) == 10**4


def test_deep_nesting_is_a_grammar_error_with_position() -> None:
    with pytest.raises(GrammarError, match="nest deeper than 100 levels") as info:
        load_grammar("deep.pcfg", "# (((( in a comment do not count\na -> " + deep_seq(500))
    assert info.value.line == 2
    assert load_grammar("ok.pcfg", "a -> " + deep_seq(90)).min_depth["a"] == 91


def test_long_unit_chains_load_and_derive_without_recursion() -> None:
    n = 1500
    src = "\n".join(f"r{i} -> r{i + 1} | seq(r{i + 1}, r{i + 1})" for i in range(n))
    src += f"\nr{n} -> compute(norm)\n"
    t = time.perf_counter()
    g = load_grammar("chain.pcfg", src)
    assert g.min_depth["r0"] == 1 and g.min_size["r0"] == 1
    space = SearchSpace("chain", g, (3, 8, 8))
    space.check(parse_arch("seq(compute(norm),compute(norm))"), strict=True)
    assert time.perf_counter() - t < 5


def test_doubling_chain_minima_are_exact() -> None:
    # r_i -> seq(r_{i+1}, r_{i+1}): the least size doubles per rule (2**n, not infinity).
    n = 200
    src = "\n".join(f"r{i} -> seq(r{i + 1}, r{i + 1})" for i in range(n))
    g = load_grammar("dbl.pcfg", src + f"\nr{n} -> compute(norm)\n")
    assert g.min_size["r0"] == 2**n and g.min_depth["r0"] == n + 1


def test_too_many_includes(tmp_path: Path) -> None:
    for i in range(MAX_INCLUDES + 5):
        (tmp_path / f"f{i}.pcfg").write_text(f"r{i} -> compute(norm)\n")
    incs = "".join(f'include "f{i}.pcfg"\n' for i in range(MAX_INCLUDES + 5))
    (tmp_path / "main.pcfg").write_text(incs)
    with pytest.raises(GrammarError, match="too many includes") as info:
        load_grammar(tmp_path / "main.pcfg")
    assert info.value.line == MAX_INCLUDES


def test_at_file_with_invalid_utf8_is_one_line_exit_2(nas_cli, tmp_path: Path) -> None:
    f = tmp_path / "arch.txt"
    f.write_bytes(b"seq(compute(norm),\xff)")
    code, _, err = nas_cli("check", f"@{f}")
    assert code == 2
    want = f"error: cannot read {f}: not valid UTF-8 (byte 0xff at line 1, column 19)."
    assert err.strip() == want
    os.mkfifo(tmp_path / "fifo")
    with deadline(10):
        code, _, err = nas_cli("show", f"@{tmp_path / 'fifo'}")
    assert code == 2 and "FIFO" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ('grammar = "einspace.pcfg"\n[input]\nshape = "3x28x28"\n', ["'shape' must be a list"]),
        ('grammar = "einspace.pcfg"\n[input]\nnum_classes = "ten"\n', ["num_classes"]),
        ('grammar = "einspace.pcfg"\n[input]\nshape = [3, -1, 28]\n', ["shape entries"]),
        ('grammar = "einspace.pcfg"\n[input]\nmode = "col"\n', ["input mode"]),
        ('grammar = "einspace.pcfg"\n[budget]\nmax_ops = "many"\n', ["budget.max_ops"]),
        ('grammar = "einspace.pcfg"\n[budget]\nmax_opz = 3\n', ["unknown budget 'max_opz'"]),
        ("grammar = 5\n", ["'grammar' must be a str"]),
        ('name = "x"\n', ["missing field 'grammar'"]),
        ('grammar = "einspace.pcfg"\nseeds = "../../etc"\n', ["seed folder"]),
        # a misspelt table or key would leave its budget or input silently unused
        ('grammar = "einspace.pcfg"\n[budgets]\nmax_ops = 3\n', ["did you mean 'budget'"]),
        ('grammar = "einspace.pcfg"\nbogus = 3\n', ["unknown field 'bogus'"]),
        ('grammar = "einspace.pcfg"\n[input]\nshap = [3, 8, 8]\n', ["did you mean 'shape'"]),
        # an input no network could take is the file's mistake, named with the file
        (
            'grammar = "einspace.pcfg"\n[input]\nshape = [3, 1000000, 1000000]\n',
            ["s.toml: input.shape", "3,000,000,000,000 elements", "budget.max_activation"],
        ),
    ],
)
def test_bad_space_toml_is_a_configuration_error(
    tmp_path: Path, toml: str, words: list[str]
) -> None:
    f = tmp_path / "s.toml"
    f.write_text(toml)
    with pytest.raises(ConfigurationError) as info:
        load_space(str(f))
    for w in words:
        assert w in str(info.value)


def test_space_toml_that_is_not_utf8(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_bytes(b'grammar = "einspace.pcfg"\nname = "\xff"\n')
    with pytest.raises(ConfigurationError, match="not valid UTF-8"):
        load_space(str(f))


@pytest.mark.parametrize(
    ("src", "line", "chain"),
    [
        ("r0 -> add [0.25] | r0\n", 1, "(r0 -> r0)"),
        ("a -> b | compute(norm)\nb -> c | compute(identity)\nc -> a\n", 3, "(a -> b -> c -> a)"),
    ],
)
def test_cycles_of_bare_references_are_rejected(src: str, line: int, chain: str) -> None:
    # A sampler could follow such a cycle forever (r0 -> r0 when add does not apply).
    with pytest.raises(GrammarError, match="nothing else in between") as info:
        load_grammar("cyc.pcfg", src)
    assert info.value.line == line and chain in str(info.value)
    # Recursion through an op is fine.
    assert load_grammar("ok.pcfg", "a -> seq(a, a) | compute(norm)\n").min_size["a"] == 1
