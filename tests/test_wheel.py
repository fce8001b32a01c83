"""The package as users get it (issue 25): pyproject's package list and package data match the
tree; the sdist and the wheel build; the wheel, installed (not editable) in a fresh virtual
environment, runs ``nas`` from there and holds the bundled data and nothing from tests/ or
bench/."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Without git: top-level names a copy for building leaves out (outputs, caches, runs), and
#: names left out at any depth (as .gitignore does).
_TOP_SKIP = {".git", ".venv", "venv", "build", "dist", "runs", "bench_runs", "site"}
_ANY_SKIP = ("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache", ".ruff_cache", ".hypothesis")
_ANY_SKIP += ("*.onnx",)


def _source_files() -> list[Path]:
    """Files a clone would hold (git: tracked or new, not ignored; else a filtered walk)."""
    try:
        proc = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        listed = [Path(n) for n in proc.stdout.decode().split("\0") if n]
        return sorted(p for p in listed if (ROOT / p).is_file())
    except (OSError, subprocess.CalledProcessError):
        out = []
        for folder, dirs, names in os.walk(ROOT):
            skip = set(shutil.ignore_patterns(*_ANY_SKIP)(folder, [*dirs, *names]))
            if Path(folder) == ROOT:
                skip |= _TOP_SKIP
            dirs[:] = [d for d in dirs if d not in skip]
            out += [Path(folder, n).relative_to(ROOT) for n in names if n not in skip]
        return sorted(out)


def _pyproject() -> dict[str, Any]:
    """pyproject.toml, parsed."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _setuptools_config() -> dict[str, Any]:
    """pyproject.toml's ``[tool.setuptools]`` table."""
    return _pyproject()["tool"]["setuptools"]


def _package_dirs(cfg: dict[str, Any]) -> dict[str, Path]:
    """Every listed package and its folder (relative to the root), as setuptools maps it."""
    mapping = cfg.get("package-dir", {})
    dirs = {}
    for name in cfg["packages"]:
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            head = ".".join(parts[:i])
            if head in mapping:
                dirs[name] = Path(mapping[head], *parts[i:])
                break
        else:
            dirs[name] = Path(mapping.get("", ""), *parts)
    return dirs


def _package_roots(cfg: dict[str, Any]) -> dict[str, Path]:
    """The installed top-level package and the folders mapped under it (nas.predictors: ...)."""
    roots = {"nas": Path("nas")}
    roots.update({k: Path(v) for k, v in cfg.get("package-dir", {}).items() if k})
    return roots


def _expected_install(src: Path, cfg: dict[str, Any]) -> dict[str, Path]:
    """Installed path (nas/...) -> source file, from the package list and package data."""
    dirs = _package_dirs(cfg)
    data = cfg.get("package-data", {})
    out = {}
    for name, rel in dirs.items():
        folder = src / rel
        install = Path(*name.split("."))
        for py in folder.glob("*.py"):
            out[(install / py.name).as_posix()] = py
        for pattern in [*data.get(name, []), *data.get("*", []), *data.get("", [])]:
            for f in folder.glob(pattern):
                if f.is_file() and "__pycache__" not in f.parts:
                    out[(install / f.relative_to(folder)).as_posix()] = f
    return out


def test_the_package_list_matches_the_tree() -> None:
    """Listed packages == folders with an __init__.py under the roots; other files are data."""
    cfg = _setuptools_config()
    listed = set(cfg["packages"])
    roots = _package_roots(cfg)
    files = [f for f in _source_files() if any(f.is_relative_to(r) for r in roots.values())]
    found, with_modules = set(), set()
    for f in files:
        # the innermost root: a mapped folder may lie inside another root's folder
        name, root = max(
            ((n, r) for n, r in roots.items() if f.is_relative_to(r)),
            key=lambda nr: len(nr[1].parts),
        )
        if f.name == "__init__.py":
            found.add(".".join([name, *f.parent.relative_to(root).parts]))
        elif f.suffix == ".py":
            with_modules.add(f.parent)
    namespace = sorted(d.as_posix() for d in with_modules if d / "__init__.py" not in files)
    assert not namespace, f"folders of modules with no __init__.py (not packaged): {namespace}"
    assert found - listed == set(), "packages in the tree missing from pyproject's list"
    assert listed - found == set(), "pyproject lists packages the tree does not have"
    expected = {f.resolve() for f in _expected_install(ROOT, cfg).values()}
    left = sorted(f.as_posix() for f in files if (ROOT / f).resolve() not in expected)
    assert not left, f"files under the packages that no package-data pattern takes: {left}"


def _env(venv: Path) -> dict[str, str]:
    """The environment of a command run from the fresh virtual environment."""
    env = {
        k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    }
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        PYTHONNOUSERSITE="1",
        OMP_NUM_THREADS="1",
    )
    return env


def _run(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; fail the test with its output when it fails."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
        f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )
    return proc


@dataclass
class Built:
    """The built distributions and the source copy they came from."""

    src: Path
    wheel: Path
    sdist: Path
    venv: Path
    work: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """sdist, then wheel from it, of a copy of the tree; the wheel installed in a fresh venv."""
    assert find_spec("build") is not None, "`build` is missing: pip install -e '.[test]'"
    base = tmp_path_factory.mktemp("wheel")
    src, dist, venv, work = base / "src", base / "dist", base / "venv", base / "work"
    for rel in _source_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    # no isolation: the test extra holds setuptools and build, so nothing is downloaded
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)], src)
    (wheel,) = dist.glob("nas-*.whl")
    (sdist,) = dist.glob("nas-*.tar.gz")
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], base)
    py = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(py), "--disable-pip-version-check"]
    _run([*pip, "install", "--no-deps", "--no-index", str(wheel)], base)
    # the dependencies (torch, onnx, ...) come from this interpreter's site-packages as plain
    # path entries: its .pth files, the editable install of nas among them, are not run, and
    # the fresh site-packages comes first on sys.path
    (purelib,) = json.loads(
        _run(
            [str(py), "-c", "import json, site; print(json.dumps(site.getsitepackages()))"], base
        ).stdout
    )
    deps = [*site.getsitepackages()]
    if site.ENABLE_USER_SITE:
        deps.append(site.getusersitepackages())
    (Path(purelib) / "_nas_test_deps.pth").write_text("\n".join(deps) + "\n")
    work.mkdir()
    return Built(src, wheel, sdist, venv, work)


def test_the_installed_wheel_runs_nas_from_the_fresh_environment(built: Built) -> None:
    """--version, sample, export, rank and the public imports, all from the wheel's files."""
    env, work, venv = _env(built.venv), built.work, built.venv
    nas = str(venv / "bin" / "nas")
    assert (venv / "bin" / "nas").is_file(), "the wheel installed no `nas` command"
    out = _run([nas, "--version"], work, env).stdout
    assert _pyproject()["project"]["version"] in out, out
    line = _run([nas, "sample", "--space", "einspace", "-n", "1", "--seed", "0"], work, env)
    arch = json.loads(line.stdout.strip().splitlines()[-1])["arch"]
    (work / "arch.txt").write_text(arch + "\n")
    _run([nas, "export", "@arch.txt", "-o", "model.onnx"], work, env)
    assert (work / "model.onnx").stat().st_size > 0
    ranked = json.loads(_run([nas, "rank", "model.onnx", "--json"], work, env).stdout)
    assert not ranked["errors"], ranked
    assert [Path(r["file"]).name for r in ranked["ranked"]] == ["model.onnx"]
    code = (
        "import json, nas, nas.cli, nas.searches, nas.predictors, nas.zoo, nas.spaces, "
        "nas.grammars\n"
        "from nas.predictors.model import bundled_dir\n"
        "mods = [nas, nas.cli, nas.searches, nas.predictors, nas.zoo, nas.spaces, nas.grammars]\n"
        "print(json.dumps([m.__file__ for m in mods] + [str(bundled_dir())]))"
    )
    files = json.loads(_run([str(venv / "bin" / "python"), "-c", code], work, env).stdout)
    fresh = built.venv.resolve()
    outside = [f for f in files if not Path(f).resolve().is_relative_to(fresh)]
    assert not outside, f"imported from outside the fresh environment: {outside}"


def test_the_wheel_holds_the_packages_and_data_and_nothing_else(built: Built) -> None:
    """Modules, predictor weights, grammars, spaces, seeds, tables; no tests/ or bench/."""
    with zipfile.ZipFile(built.wheel) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
    dist_info = [n for n in names if n.split("/")[0].endswith(".dist-info")]
    files = set(names) - set(dist_info)
    assert not [n for n in names if n.split("/")[0] in {"tests", "bench"}]
    assert not [n for n in names if {"tests", "bench"} & set(n.split("/")[:-1])]
    assert {n.split("/")[0] for n in files} == {"nas"}
    for must in (
        "nas/cli/__init__.py",
        "nas/ops/__init__.py",
        "nas/py.typed",
        "nas/dsl/arch.lark",
        "nas/dsl/pcfg.lark",
        "nas/predictors/weights/nb201-v1/model.safetensors",
        "nas/predictors/weights/transfer-v3/model.safetensors",
        "nas/grammars/einspace.pcfg",
        "nas/grammars/zoo/moe.pcfg",
        "nas/spaces/einspace.toml",
        "nas/spaces/seeds/resnet18.arch",
        "nas/benchmarks/nb201_unique.csv.gz",
    ):
        assert must in files, f"{must} is not in the wheel"
    expected = set(_expected_install(built.src, _setuptools_config()))
    assert files == expected, (
        f"missing: {sorted(expected - files)}; unexpected: {sorted(files - expected)}"
    )
    (entry_points,) = [n for n in dist_info if n.endswith("entry_points.txt")]
    with zipfile.ZipFile(built.wheel) as zf:
        assert "nas = nas.cli:main" in zf.read(entry_points).decode()


def test_the_sdist_holds_the_sources(built: Built) -> None:
    """The sdist (the wheel was built from it) has pyproject, README and every packaged file."""
    with tarfile.open(built.sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    sources = {
        f.relative_to(built.src).as_posix()
        for f in _expected_install(built.src, _setuptools_config()).values()
    }
    missing = sorted(({"pyproject.toml", "README.md"} | sources) - names)
    assert not missing, f"not in the sdist: {missing}"
