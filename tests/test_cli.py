"""The ``nas`` command: outputs users script against, and one-line errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CONV = "route(im2col(k=3,s=1,p=1),compute(linear(out=16)),col2im)"
ARCH = f"seq({CONV},compute(norm))"


def test_sample_prints_json_lines_reproducibly(nas_cli) -> None:
    args = (
        "sample",
        "--space",
        "einspace",
        "--input-shape",
        "3x28x28",
        "--num-classes",
        "20",
        "-n",
        "25",
        "--seed",
        "0",
    )
    code, out1, err = nas_cli(*args)
    assert code == 0, err
    _, out2, _ = nas_cli(*args)
    assert out1 == out2  # byte for byte
    _, out3, _ = nas_cli(*args[:-1], "1")
    assert out3 != out1
    lines = out1.splitlines()
    assert len(lines) == 25
    for line in lines:
        rec = json.loads(line)
        assert set(rec) == {"arch", "params", "depth"}
        assert isinstance(rec["params"], int) and rec["params"] > 0
        assert isinstance(rec["depth"], int)


def test_show_prints_tree_with_shapes_and_params(nas_cli) -> None:
    code, out, err = nas_cli("show", ARCH, "--input-shape", "3x8x8", "--num-classes", "10")
    assert code == 0, err
    assert "im2col(k=3,s=1,p=1)" in out and "64x27:col" in out and "16x8x8:im" in out
    assert "448 params" in out  # 27*16 + 16 in the conv route
    assert "backbone 480 params + head 170 = 650" in out


def test_show_reads_at_file(nas_cli, tmp_path: Path) -> None:
    f = tmp_path / "a.arch"
    f.write_text(ARCH + "\n")
    code, out, _ = nas_cli("show", f"@{f}", "--input-shape", "3x8x8")
    assert code == 0 and "backbone 480 params" in out


def test_check_ok_and_strict(nas_cli) -> None:
    code, out, _ = nas_cli("check", ARCH, "--strict")
    assert code == 0 and out.startswith("ok: derivable")
    mixer = Path("spaces/seeds/mlp_mixer.arch").read_text().strip()
    code, out, _ = nas_cli("check", mixer)
    assert code == 0
    code, _, err = nas_cli("check", mixer, "--strict")
    assert code == 2 and "not derivable" in err and "linear_rel" in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("check", "seq(compute(norm)"), ["ends early", "column 18"]),
        (("check", "seq(compute(lineer(out=3)),compute(norm))"), ["unknown op 'lineer'"]),
        (
            (
                "check",
                "route(im2col(k=16,s=16,p=0),compute(identity),col2im)",
                "--input-shape",
                "3x8x8",
            ),
            ["im2col(k=16) needs at least 16x16", "route > im2col"],
        ),
        (
            ("check", "branch(clone(k=2),compute(norm),compute(linear(out=4)),add)"),
            ["add needs equal shapes", "branch > add"],
        ),
        (("check", ARCH, "--input-shape", "3xx"), ["input shape"]),
        (("sample", "--space", "nowhere"), ["unknown space 'nowhere'", "einspace"]),
        (("show", "@/nonexistent/file"), ["cannot read /nonexistent/file"]),
        (("sample", "--num-classes", "0"), ["--num-classes must be at least 1"]),
    ],
)
def test_user_mistakes_are_one_line_exit_2(nas_cli, args, words) -> None:
    code, out, err = nas_cli(*args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "Traceback" not in err + out
    for w in words:
        assert w in err


def test_bad_grammar_file_names_line_and_column(nas_cli, tmp_path) -> None:
    g = tmp_path / "bad.pcfg"
    g.write_text("start a\na -> seq(compute(norm), modul)\n")
    code, _, err = nas_cli("sample", "--space", str(g))
    assert code == 2
    assert f"{g}:2:25: unknown symbol 'modul'" in err


def test_budget_violation_is_reported(nas_cli, tmp_path) -> None:
    toml = tmp_path / "tiny.toml"
    toml.write_text('grammar = "einspace.pcfg"\n[budget]\nmax_params = 100\n')
    code, _, err = nas_cli("check", ARCH, "--space", str(toml))
    assert code == 2 and "params is 480, over the budget max_params=100" in err


def test_export_writes_onnx_and_reports_parity(nas_cli, tmp_path) -> None:
    out_file = tmp_path / "model.onnx"
    code, out, err = nas_cli(
        "export",
        ARCH,
        "--space",
        "einspace",
        "--input-shape",
        "3x28x28",
        "--num-classes",
        "20",
        "-o",
        str(out_file),
    )
    assert code == 0, err
    assert out_file.stat().st_size > 0
    diff = float(out.rsplit("=", 1)[1])
    assert diff < 1e-4


def test_usage_error_exits_2(nas_cli) -> None:
    code, _, err = nas_cli("sample", "--bogus")
    assert code == 2 and "No such option" in err


def test_nb201_sample_prints_both_forms(nas_cli) -> None:
    from nas.nb201 import from_nb201

    code, out, err = nas_cli("sample", "--space", "nb201", "-n", "5", "--seed", "3")
    assert code == 0, err
    for line in out.splitlines():
        rec = json.loads(line)
        assert rec["nb201"].startswith("|") and str(from_nb201(rec["nb201"])) == rec["arch"]


def test_check_accepts_nb201_strings(nas_cli) -> None:
    cell = (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    )
    code, out, err = nas_cli("check", cell, "--space", "nb201", "--strict")
    assert code == 0, err
    assert "64x8x8:im" in out


@pytest.mark.parametrize(
    "arch",
    [
        "branch(clone(k=2),compute(norm),add)",  # k = 2 draws two independent modules
        "branch(clone(k=4),compute(norm),compute(norm),compute(identity),compute(norm),add)",
    ],
)
def test_strict_check_knows_how_repeats_are_written(nas_cli, arch) -> None:
    code, _, err = nas_cli("check", arch)
    assert code == 0, err
    code, _, err = nas_cli("check", arch, "--strict")
    assert code == 2 and "not derivable" in err and "repeated child" in err


def test_ctrl_c_in_a_command_says_which_command_stopped(nas_cli, monkeypatch, tmp_path):
    import nas.predictors.benches.nb201_bench as nb

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(nb, "build_nb201_bench", interrupted)
    code, _, err = nas_cli(
        "bench", "build", "--space", "nb201", "--n", "5", "-o", str(tmp_path / "b")
    )
    assert code == 130
    assert (
        err.strip().splitlines()[-1] == "interrupted: nas bench build stopped before it finished."
    )
    assert not (tmp_path / "b").exists()


def test_count_option_has_one_spelling_set_across_commands(nas_cli, tmp_path) -> None:
    # nas sample and nas bench build both take -n, --n and --num for "how many"
    outs = {
        flag: nas_cli("sample", "--space", "nb201", flag, "3") for flag in ("-n", "--n", "--num")
    }
    assert {code for code, _, _ in outs.values()} == {0}
    assert len({out for _, out, _ in outs.values()}) == 1 and outs["-n"][1].count("\n") == 3
    code, out, err = nas_cli("bench", "build", "--num", "4", "-o", str(tmp_path / "b"))
    assert code == 0, err
    assert "4 records" in out


def test_version_flag_prints_the_installed_version(nas_cli) -> None:
    from importlib.metadata import version

    code, out, _ = nas_cli("--version")
    assert code == 0 and out.startswith(f"nas {version('nas')} (Python ")
