"""The shape of the code: no import cycles, the CLI stays thin, a zoo family loads alone."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Source folder -> the package it installs as (pyproject's package-dir mapping).
PACKAGES = {
    "nas": "nas",
    "searches": "nas.searches",
    "predictors": "nas.predictors",
    "zoo": "nas.zoo",
}


def _modules() -> dict[str, Path]:
    mods = {}
    for folder, package in PACKAGES.items():
        for f in (ROOT / folder).rglob("*.py"):
            parts = f.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            mods[name] = f
    return mods


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (at any depth of its code)."""
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        tree = ast.parse(f.read_text())
        # Imports under `if TYPE_CHECKING:` count too: a reader, and any tool that reads
        # imports, sees the circle they close even though it never runs.
        for n in ast.walk(tree):
            names: list[str] = []
            if isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
                names = [
                    f"{n.module}.{a.name}" if f"{n.module}.{a.name}" in mods else n.module
                    for a in n.names
                ]
            elif isinstance(n, ast.Import):
                names = [a.name for a in n.names]
            graph[m] |= {t for t in names if t in mods and t != m}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_no_import_cycles() -> None:
    assert _cycles(_imports(_modules())) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_only_the_cli_imports_the_cli() -> None:
    graph = _imports(_modules())
    outside = {
        m
        for m, deps in graph.items()
        if not m.startswith(("nas.cli", "nas.__main__"))
        and any(d.startswith("nas.cli") for d in deps)
    }
    assert outside == set()


def test_the_core_knows_nothing_of_search_predictor_or_zoo() -> None:
    graph = _imports(_modules())
    core = [
        m for m in graph if m.startswith(("nas.dsl", "nas.ops", "nas.analysis", "nas.sampling"))
    ]
    later = ("nas.searches", "nas.predictors", "nas.zoo", "nas.cli", "nas.train")
    leaks = {m: sorted(d for d in graph[m] if d.startswith(later)) for m in core}
    assert {m: d for m, d in leaks.items() if d} == {}


def test_no_cli_function_is_long() -> None:
    long = []
    for f in (ROOT / "nas" / "cli").glob("*.py"):
        for n in ast.walk(ast.parse(f.read_text())):
            if isinstance(n, ast.FunctionDef) and n.end_lineno - n.lineno + 1 > 62:
                long.append(f"{f.name}:{n.name} ({n.end_lineno - n.lineno + 1} lines)")
    assert long == []


def test_loading_one_zoo_family_imports_no_other() -> None:
    code = (
        "import sys; from nas.space import load_space; load_space('zoo:moe'); "
        "print(sorted(m for m in sys.modules if m.startswith('nas.zoo.') "
        "and not m.startswith('nas.zoo._')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['nas.zoo.moe']"


def test_importing_nas_is_cheap() -> None:
    code = (
        "import sys, nas; "
        "print(any(m == 'torch' or m.startswith('nas.searches') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_predictor_knows_nothing_of_search_or_zoo() -> None:
    graph = _imports(_modules())
    leaks = {
        m: sorted(d for d in deps if d.startswith(("nas.searches", "nas.zoo", "nas.cli")))
        for m, deps in graph.items()
        if m.startswith("nas.predictors")
    }
    assert {m: d for m, d in leaks.items() if d} == {}


# nas.predictors in parts: ranking is the package's own modules (read a file, choose the
# model, score); benches (training data), training and the research harness are subpackages
PREDICTOR_PARTS = ("nas.predictors.benches", "nas.predictors.training", "nas.predictors.research")


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    """The modules ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for d in graph[todo.pop()] - seen:
            seen.add(d)
            todo.append(d)
    return seen


def test_ranking_never_imports_the_benches_training_or_research() -> None:
    graph = _imports(_modules())
    ranking = [
        m for m in graph if m.startswith("nas.predictors") and not m.startswith(PREDICTOR_PARTS)
    ]
    assert {"nas.predictors.rank", "nas.predictors.record", "nas.predictors.model"} <= set(ranking)
    leaks = {
        m: sorted(d for d in _reach(graph, m) if d.startswith(PREDICTOR_PARTS)) for m in ranking
    }
    assert {m: d for m, d in leaks.items() if d} == {}


def test_only_the_research_harness_imports_it() -> None:
    graph = _imports(_modules())
    harness = "nas.predictors.research"
    users = {
        m
        for m, deps in graph.items()
        if not m.startswith(harness) and any(d.startswith(harness) for d in deps)
    }
    assert users == set()


def test_the_predictor_exports_its_ranking_lazily() -> None:
    import nas.predictors as predictors
    from nas.predictors import GraphRecord, choose_model, rank_files, read_record
    from nas.predictors.rank import choose_model as chooser
    from nas.predictors.rank import rank_files as ranker
    from nas.predictors.record import GraphRecord as Record
    from nas.predictors.record import read_record as reader

    assert (rank_files, choose_model, GraphRecord, read_record) == (
        ranker,
        chooser,
        Record,
        reader,
    )
    assert all(getattr(predictors, n) is not None for n in predictors.__all__)
    code = (
        "import sys, nas.predictors; "
        "print(any(m == 'torch' or m == 'nas.predictors.rank' for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
