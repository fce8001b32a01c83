"""Datasets: the Unseen NAS real-file loader (good and broken suites), the offline stand-ins
(labels recomputed from their components, disjoint test material, determinism, balance), the
npz cache and the registry's names and one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from nas.data import (
    SIZES,
    digits,
    get_dataset_info,
    language,
    list_datasets,
    load_components,
    load_dataset,
    tiles,
)
from nas.data import cache as cache_mod
from nas.data.unseen import MEMBERS
from nas.exceptions import ConfigurationError, NasError, UnknownNameError

SPLITS = ("train", "valid", "test")
TINY = (60, 20, 20)
REAL_ONLY = ("gutenberg", "isabella", "geoclassing", "chesseract")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's cache or data directory."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("NAS_DATA_DIR", raising=False)


def write_member(
    root: Path,
    key: str,
    folder: str | None = None,
    sizes: tuple[int, int, int] = (12, 6, 6),
    meta: dict | None = None,
    meta_name: str = "metadata",
    dtype: type = np.float32,
) -> Path:
    """A tiny fake suite member in the official layout; returns its folder."""
    member = MEMBERS[key]
    path = root / (folder or member.title)
    path.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in zip(SPLITS, sizes, strict=True):
        np.save(path / f"{split}_x.npy", rng.random((n, *member.input_shape)).astype(dtype))
        np.save(path / f"{split}_y.npy", np.arange(n) % member.num_classes)
    if meta is None:
        meta = {"num_classes": member.num_classes, "input_shape": [sizes[0], *member.input_shape]}
    (path / meta_name).write_text(json.dumps({**meta, "codename": "Test"}))
    return path


def one_line_error(exc: pytest.ExceptionInfo, *parts: str) -> str:
    message = str(exc.value)
    assert isinstance(exc.value, NasError)
    assert "\n" not in message
    for part in parts:
        assert part in message, message
    return message


# --- real files ------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["AddNIST", "addnist", "add_nist", "Add-NIST"])
@pytest.mark.parametrize("meta_name", ["metadata", "metadata.json"])
def test_real_loader_accepts_official_layout(tmp_path: Path, folder: str, meta_name: str) -> None:
    write_member(tmp_path, "addnist", folder=folder, meta_name=meta_name)
    ds = load_dataset("unseen:addnist", data_dir=tmp_path)
    assert ds.name == "unseen:addnist" and ds.meta["kind"] == "real"
    assert ds.source == f"real files in {tmp_path / folder}"
    assert (ds.input_shape, ds.num_classes) == ((3, 28, 28), 20)
    assert [len(getattr(ds, s)) for s in SPLITS] == [12, 6, 6]
    assert isinstance(ds.train.x, np.memmap)  # float32 on disk stays memory-mapped
    assert ds.train.x.dtype == np.float32 and ds.train.y.dtype == np.int64
    expected = np.load(tmp_path / folder / "valid_x.npy")
    np.testing.assert_array_equal(ds.valid.x, expected)


def test_real_loader_env_var_conversion_and_direct_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Language stored as float64 (N, 24, 24) without channel axis; metadata with other names.
    meta = {"n_classes": 10, "shape": [24, 24]}
    folder = write_member(tmp_path, "language", meta=meta, dtype=np.float64)
    for split in SPLITS:
        np.save(folder / f"{split}_x.npy", np.load(folder / f"{split}_x.npy")[:, 0])
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path))
    ds = load_dataset("UNSEEN:Language")
    assert ds.meta["kind"] == "real" and ds.meta["data_dir_from"] == "NAS_DATA_DIR"
    assert ds.train.x.shape == (12, 1, 24, 24) and ds.train.x.dtype == np.float32
    ds2 = load_dataset("unseen:language", data_dir=folder)  # the member folder itself
    np.testing.assert_array_equal(ds.test.x, ds2.test.x)
    assert get_dataset_info("unseen:language").available(tmp_path) == "real"


@pytest.mark.parametrize(
    ("breakage", "parts"),
    [
        ("shape", ("train_x.npy", "expected shape (N, 3, 28, 28)", "(12, 3, 28, 27)")),
        ("missing", ("valid_y.npy", "missing")),
        ("labels", ("test_y.npy", "expected labels in 0..19", "0..20")),
        ("size", ("train_x.npy", "expected 99 samples", "got 12")),
        ("label_count", ("valid_y.npy", "expected labels of shape (6,)")),
        ("float_labels", ("train_y.npy", "expected integer labels")),
        ("pickle", ("test_x.npy", "not a readable .npy array")),
        ("garbage", ("train_x.npy", "not a readable .npy array", "magic bytes")),
        ("metadata", ("metadata", "expected a JSON object")),
        ("meta_shape", ("metadata", "expected 'input_shape' as [C, H, W]")),
    ],
)
def test_real_loader_rejects_broken_suites(tmp_path: Path, breakage: str, parts: tuple) -> None:
    meta = {"num_classes": 20, "input_shape": [12, 3, 28, 28]}
    if breakage == "size":
        meta["train_size"] = 99
    if breakage == "meta_shape":
        meta["input_shape"] = [3, 28, 28, 1, 1]
    folder = write_member(tmp_path, "addnist", meta=meta)
    if breakage == "shape":
        np.save(folder / "train_x.npy", np.zeros((12, 3, 28, 27), np.float32))
    elif breakage == "missing":
        (folder / "valid_y.npy").unlink()
    elif breakage == "labels":
        np.save(folder / "test_y.npy", np.array([0, 1, 2, 3, 4, 20]))
    elif breakage == "label_count":
        np.save(folder / "valid_y.npy", np.zeros(5, np.int64))
    elif breakage == "float_labels":
        np.save(folder / "train_y.npy", np.full(12, 0.5))
    elif breakage == "pickle":
        np.save(folder / "test_x.npy", np.array([{"a": 1}] * 6, dtype=object), allow_pickle=True)
    elif breakage == "garbage":
        (folder / "train_x.npy").write_bytes(b"not numpy at all")
    elif breakage == "metadata":
        (folder / "metadata").write_text("{num_classes: 20")
    with pytest.raises(ConfigurationError) as exc:
        load_dataset("unseen:addnist", data_dir=tmp_path)
    one_line_error(exc, str(folder), *parts)


def test_real_loader_falls_back_to_table_and_rejects_bad_data_dir(tmp_path: Path) -> None:
    folder = write_member(tmp_path, "chesseract", folder="chesseract")
    (folder / "metadata").unlink()
    ds = load_dataset("unseen:chesseract", data_dir=tmp_path)
    assert (ds.input_shape, ds.num_classes) == ((12, 8, 8), 3)
    assert any("suite table" in note for note in ds.meta["notes"])
    np.save(folder / "train_y.npy", np.full(12, 3))
    with pytest.raises(ConfigurationError) as exc:
        load_dataset("unseen:chesseract", data_dir=tmp_path)
    one_line_error(exc, "train_y.npy", "expected labels in 0..2")
    with pytest.raises(ConfigurationError) as exc:
        load_dataset("unseen:addnist", data_dir=tmp_path / "nowhere")
    one_line_error(exc, "nowhere", "does not exist")


def test_an_explicit_data_dir_without_the_files_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--data-dir asks for real files: a stand-in in their place is refused, in one line."""
    with pytest.raises(ConfigurationError) as exc:
        load_dataset("unseen:addnist", data_dir=tmp_path)
    one_line_error(exc, f"no AddNIST folder under {tmp_path}", "standin:addnist")
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path))  # a shared default may lack a member
    ds = load_dataset("unseen:addnist")
    assert ds.meta["kind"] != "real" and "no AddNIST folder" in ds.source


@pytest.mark.parametrize("key", REAL_ONLY)
def test_real_only_members_without_files_raise_one_line(tmp_path: Path, key: str) -> None:
    info = get_dataset_info(f"unseen:{key}")
    assert not info.has_standin and info.available() == "missing"
    for data_dir in (None, tmp_path):
        with pytest.raises(ConfigurationError) as exc:
            load_dataset(f"unseen:{key}", data_dir=data_dir)
        one_line_error(exc, "Geada et al., CVPR 2024", "--data-dir", "NAS_DATA_DIR")
    assert str(tmp_path) in str(exc.value)


# --- stand-ins -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["addnist", "multnist"])
def test_digit_standins_labels_balance_and_disjoint_test_images(kind: str) -> None:
    ds = load_dataset(f"unseen:{kind}")
    assert ds.meta["kind"] == "stand-in" and "stand-in" in ds.source
    assert ds.input_shape == (3, 28, 28) and ds.num_classes == digits.NUM_CLASSES[kind]
    comp = load_components(f"unseen:{kind}")
    images, targets = digits.load_source()
    used = {}
    for split in SPLITS:
        y, digit, idx = getattr(ds, split).y, comp[f"{split}_digits"], comp[f"{split}_images"]
        assert ds.meta["split_sizes"][split] == len(y) == SIZES["small"][SPLITS.index(split)]
        np.testing.assert_array_equal(y, digits.label_of(kind, digit))
        if kind == "addnist":
            sums = digit.astype(int).sum(axis=1)
            assert sums.min() >= 1 and sums.max() <= 20
            np.testing.assert_array_equal(y, sums - 1)
        else:
            np.testing.assert_array_equal(y, np.prod(digit.astype(int), axis=1) % 10)
        np.testing.assert_array_equal(targets[idx], digit)  # each image shows its digit
        counts = np.bincount(y, minlength=ds.num_classes)
        assert counts.max() - counts.min() <= 1
        used[split] = set(idx.ravel().tolist())
        # redraw a few samples from the recorded components
        redrawn = digits.render(
            images[idx[:5].ravel()], comp[f"{split}_affine"][:5].reshape(-1, 4)
        )
        x = getattr(ds, split).x[:5]
        np.testing.assert_allclose(x, redrawn.reshape(5, 3, 28, 28), atol=1 / 255 + 1e-6)
    assert not used["test"] & (used["train"] | used["valid"])
    assert ds.train.x.dtype == np.float32 and 0.0 <= ds.train.x.min() < ds.train.x.max() <= 1.0


@pytest.mark.parametrize("kind", ["addnist", "multnist"])
def test_draw_split_samples_any_digit_source_by_the_recipe(kind: str) -> None:
    # draw_split is what a real-MNIST build of the task shares with the stand-in
    targets = np.repeat(np.arange(10), 7)[np.random.default_rng(1).permutation(70)]
    pool = np.flatnonzero(np.arange(70) % 3 != 0)  # a pool that leaves some images out
    rng = np.random.default_rng(0)
    labels, triples, chosen = digits.draw_split(kind, 203, pool, targets, rng)
    np.testing.assert_array_equal(labels, digits.label_of(kind, triples))
    counts = np.bincount(labels, minlength=digits.NUM_CLASSES[kind])
    assert counts.sum() == 203 and counts.max() - counts.min() <= 1
    np.testing.assert_array_equal(targets[chosen], triples)
    assert set(chosen.ravel().tolist()) <= set(pool.tolist())
    if kind == "addnist":  # label = r + g + b - 1, only sums 1..20 (the data card's rule)
        assert set(labels.tolist()) == set(range(20))
        np.testing.assert_array_equal(labels, triples.sum(axis=1) - 1)
    again = digits.draw_split(kind, 203, pool, targets, np.random.default_rng(0))
    np.testing.assert_array_equal(again[2], chosen)


def test_digit_glyphs_are_placed_and_inked_like_mnist() -> None:
    # MNIST centres each digit's centre of mass and has sharp strokes; the stand-in's
    # calibration (README, "The default protocol") relies on both
    arr = digits.generate("addnist", (300, 10, 10), 0)
    x, affine = arr["train_x"].astype(np.float64) / 255.0, arr["train_affine"]
    pos = np.arange(digits.SIDE)
    mass = x.sum(axis=(2, 3))
    centre = (digits.SIDE - 1) / 2
    com_r, com_c = x.sum(axis=3) @ pos / mass, x.sum(axis=2) @ pos / mass
    assert np.abs(affine[..., 2:]).max() <= digits.MAX_SHIFT <= 0.5
    off_r, off_c = com_r - centre - affine[..., 2], com_c - centre - affine[..., 3]
    assert max(np.abs(off_r).max(), np.abs(off_c).max()) < 1.0  # box-centred: up to 2.9
    assert max(np.abs(off_r).mean(), np.abs(off_c).mean()) < 0.2  # box-centred: 0.77
    faint, ink, full = (x > 0.05).mean(), (x > 0.5).mean(), (x > 0.95).mean()
    assert faint / ink < 1.7 and full > 0.04  # MNIST: 1.38 and 0.079; a plain upscale 2.2, 0.011
    assert 0.10 < ink < 0.20  # MNIST: 0.133


def test_language_standin_words_labels_and_substitutions() -> None:
    from wordfreq import available_languages

    ds = load_dataset("unseen:language")
    comp = load_components("standin:language")
    languages, subs = ds.meta["languages"], ds.meta["substitutions"]
    assert len(languages) == 10 and len(set(languages)) == 10
    assert set(languages) <= set(available_languages())
    assert subs == {
        k: v for k, v in zip(language.SUITE_LANGUAGES, languages, strict=True) if k != v
    }
    assert ("sw" in subs) == ("sw" not in available_languages())
    for code, used in subs.items():
        assert f"{code} (used {used})" in ds.source
    vocab, lang_of, pool = comp["vocab"], comp["vocab_lang"], comp["vocab_pool"]
    assert len(set(vocab.tolist())) == len(vocab)  # no word in two languages
    assert all(len(w) == 6 and set(w) <= set(language.LETTERS) for w in vocab.tolist())
    words_of = {}
    for split in SPLITS:
        s, words = getattr(ds, split), comp[f"{split}_words"]
        assert s.x.shape[1:] == (1, 24, 24) and np.all(s.x.sum(axis=-1) == 1)
        text = language.decode(s.x)
        assert text == ["".join(row) for row in vocab[words].tolist()]
        langs = lang_of[words]
        assert np.all(langs == langs[:, :1])  # four words of one language
        np.testing.assert_array_equal(s.y, langs[:, 0])
        assert np.all(pool[words] == language.POOL_OF_SPLIT[split])
        words_of[split] = set(vocab[words].ravel().tolist())
        counts = np.bincount(s.y, minlength=10)
        assert counts.max() - counts.min() <= 1
    assert not words_of["test"] & (words_of["train"] | words_of["valid"])
    assert not words_of["valid"] & words_of["train"]  # valid measures unseen words, as test
    from wordfreq import word_frequency

    sample = comp["train_words"][:20, 0]
    assert all(word_frequency(vocab[i], languages[lang_of[i]]) > 0 for i in sample)


def test_tile_standin_labels_patterns_and_redraw() -> None:
    ds = load_dataset("unseen:cifartile")
    assert ds.meta["standin"] == "standin:shapetile" and "shapetile" in ds.source
    assert ds.input_shape == (3, 64, 64) and ds.num_classes == 4
    comp = load_components("unseen:cifartile")
    for split in SPLITS:
        s, classes = getattr(ds, split), comp[f"{split}_classes"]
        np.testing.assert_array_equal(s.y, tiles.label_of(classes))
        np.testing.assert_array_equal(s.y, [len(set(row)) - 1 for row in classes.tolist()])
        patterns = {tuple(sorted(np.unique(row, return_counts=True)[1])) for row in classes}
        assert patterns <= {(4,), (2, 2), (1, 1, 2), (1, 1, 1, 1)}
        assert np.bincount(s.y, minlength=4).min() == len(s) // 4
        drawn = tiles.render_tiles(
            classes[:3].ravel(), comp[f"{split}_params"][:3].reshape(-1, 12)
        )
        grid = tiles.assemble(drawn.reshape(3, 4, 3, 32, 32))
        np.testing.assert_allclose(s.x[:3], grid, atol=1 / 255 + 1e-6)
        # top-right quadrant is the second recorded tile
        np.testing.assert_allclose(s.x[0, :, :32, 32:], drawn[1], atol=1 / 255 + 1e-6)


@pytest.mark.parametrize(
    "generate",
    [
        lambda seed: digits.generate("addnist", TINY, seed),
        lambda seed: digits.generate("multnist", TINY, seed),
        lambda seed: language.generate(TINY, seed),
        lambda seed: tiles.generate(TINY, seed),
    ],
    ids=["addnist", "multnist", "language", "shapetile"],
)
def test_generators_are_deterministic(generate) -> None:
    a, b, c = generate(0), generate(0), generate(1)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["train_x"], c["train_x"])


# --- cache and registry ----------------------------------------------------------------------


def test_cache_is_reused_keyed_and_repaired(monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_dataset("standin:addnist", seed=3)
    path = Path(first.meta["cache_file"])
    assert path.is_file() and first.meta["cache"] == "generated and stored"
    assert path.parent == Path(os.environ["XDG_CACHE_HOME"]) / "nas" / "datasets"
    assert "small" in path.name and "seed3" in path.name and f"v{digits.VERSION}" in path.name
    mtime = path.stat().st_mtime_ns

    def boom(*args, **kwargs):
        raise AssertionError("regenerated although cached")

    with monkeypatch.context() as m:
        m.setattr(digits, "generate", boom)
        again = load_dataset("unseen:addnist", seed=3)
    assert again.meta["cache"] == "reused" and path.stat().st_mtime_ns == mtime
    for split in SPLITS:
        np.testing.assert_array_equal(getattr(first, split).x, getattr(again, split).x)
    path.write_bytes(b"truncated")  # a broken cache file is regenerated, not an error
    repaired = load_dataset("standin:addnist", seed=3)
    assert repaired.meta["cache"] == "generated and stored"
    np.testing.assert_array_equal(repaired.test.y, first.test.y)
    assert cache_mod.cache_file("addnist-digits", "small", 4, "1") != path


def test_a_cache_file_of_other_split_sizes_is_regenerated() -> None:
    """A size whose split counts changed (small's evaluation splits grew) must not be read
    back from an older cache file with the old counts."""
    first = load_dataset("standin:language", seed=5)
    path = Path(first.meta["cache_file"])
    with np.load(path) as z:
        old = {k: z[k][:500] if k.startswith(("valid", "test")) else z[k] for k in z.files}
    with path.open("wb") as fh:  # the file an older version wrote: 500 valid, 500 test
        np.savez(fh, **old)
    again = load_dataset("standin:language", seed=5)
    assert again.meta["cache"] == "generated and stored"
    assert len(again.test.y) == SIZES["small"][2] and len(again.valid.y) == SIZES["small"][1]
    np.testing.assert_array_equal(again.test.y, first.test.y)


def test_unseen_alias_names_and_argument_errors() -> None:
    ds = load_dataset("unseen")
    assert ds.name == "unseen:language" and ds.meta["member"] == "Language"
    assert ds.meta["requested"] == "unseen" and ds.meta["resolved"] == "unseen:language"
    assert "unseen = unseen:language" in ds.source and "default" in ds.source
    assert get_dataset_info("unseen").name == "unseen:language"
    assert get_dataset_info("Unseen:Add_NIST").name == "unseen:addnist"
    names = list_datasets()
    assert len([n for n in names if n.startswith("unseen:")]) == 8 and "unseen" not in names
    assert "unseen" in list_datasets(include_aliases=True)
    assert get_dataset_info("standin:shapetile").available() == "stand-in"
    info = get_dataset_info("unseen:multnist")
    assert info.has_standin and info.full_sizes == (45_000, 15_000, 10_000)
    with pytest.raises(UnknownNameError) as exc:
        load_dataset("unseen:mnist")
    one_line_error(exc, "unseen:mnist", "unseen:addnist", "standin:shapetile")
    with pytest.raises(ConfigurationError) as exc:
        load_dataset("unseen", size="huge")
    one_line_error(exc, "huge", "small")
    with pytest.raises(ConfigurationError):
        load_dataset("unseen", seed=-1)
    with pytest.raises(ConfigurationError):
        load_components("unseen:gutenberg")
