"""A mistyped space, dataset, strategy or zoo family is one line naming the closest names and
every name the command takes, schemes included (issue 25)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.exceptions import UnknownNameError


def _one_line(code: int, out: str, err: str, *parts: str) -> str:
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for part in parts:
        assert part in err, err
    return err


@pytest.mark.parametrize(
    ("args", "parts"),
    [
        (
            ("--space", "einspce"),
            ["unknown space 'einspce'; did you mean 'einspace'? (known: einspace, nb201, zoo:"],
        ),
        (("--space", "zo:moe"), ["did you mean 'zoo:moe'", ".toml or .pcfg file"]),
        (("--strategy", "nsga"), ["unknown strategy 'nsga'; did you mean 'nsga2'? (known: "]),
        (("--space", "zoo:mo"), ["unknown zoo family 'mo'; did you mean 'moe'", "(known: "]),
        (
            ("--dataset", "cifar10"),
            [
                "unknown dataset 'cifar10'; did you mean 'nb201:cifar10'",
                "unseen:language",
                "standin:shapetile",
                "nb201:imagenet16-120",
                "zoo:FAMILY",
            ],
        ),
        (("--space", "nb201", "--dataset", "nb201:cifar1"), ["did you mean 'cifar10'"]),
    ],
)
def test_nas_search_suggests_the_closest_name(nas_cli, tmp_path: Path, args, parts) -> None:
    run = tmp_path / "run"
    _one_line(*nas_cli("search", *args, "--run-dir", str(run)), *parts)
    assert not run.exists()  # refused before a run folder exists


def test_other_commands_suggest_too(nas_cli, tmp_path: Path) -> None:
    _one_line(*nas_cli("sample", "--space", "nb210"), "did you mean 'nb201'")
    onnx = str(tmp_path / "m.onnx")
    _one_line(*nas_cli("zoo", "export", "rrm", "-o", onnx), "did you mean 'rrn'", "(known: ")
    _one_line(*nas_cli("datasets", "prepare", "addnst"), "did you mean 'unseen:addnist'")


def test_the_library_calls_give_the_same_messages() -> None:
    from nas.searches import get_strategy
    from nas.zoo import get_family

    from nas.data import load_dataset, resolve_dataset
    from nas.space import load_space

    cases = [
        (lambda: load_space("einspce"), "did you mean 'einspace'?"),
        (lambda: get_strategy("tpee"), "did you mean 'tpe'?"),
        (lambda: get_family("zoo:slimable"), "did you mean 'slimmable'?"),
        (lambda: resolve_dataset("CIFAR10"), "did you mean 'nb201:cifar10'"),
        (lambda: load_dataset("multnst"), "did you mean 'unseen:multnist'"),
    ]
    for call, part in cases:
        with pytest.raises(UnknownNameError) as exc:
            call()
        assert part in str(exc.value) and "\n" not in str(exc.value), str(exc.value)
    with pytest.raises(UnknownNameError) as exc:  # nothing close: the whole list, no guess
        get_strategy("bayesopt")
    assert str(exc.value) == "unknown strategy 'bayesopt'; choose one of nsga2, predictor, " + (
        "re, rs, tpe."
    )


def test_loadable_datasets_are_not_offered_table_names() -> None:
    """``load_dataset`` loads files, so its error lists loadable names only; a search's
    (``resolve_dataset``) adds the table scheme and the zoo's tasks."""
    from nas.data import load_dataset, resolve_dataset

    with pytest.raises(UnknownNameError) as exc:
        load_dataset("svhn")
    assert "standin:addnist" in str(exc.value) and "nb201:" not in str(exc.value)
    with pytest.raises(UnknownNameError) as exc:
        resolve_dataset("svhn")
    assert "nb201:cifar100" in str(exc.value) and "zoo:FAMILY" in str(exc.value)
