"""Language stand-in: the suite's recipe applied to ``wordfreq``'s word lists.

The suite took six-letter words over the letters a-x from dictionaries of ten
Latin-script languages (en, nl, de, es, fr, pt, sw, zu, fi, sv), dropped words found in more
than one language, kept train and test words disjoint, and one-hot encoded four words of
one language as a 24x24 image (row = character position, column = letter a..x); the label
is the language. The dictionaries are not available offline; ``wordfreq`` ships word lists
for most of these languages but not Swahili or Zulu, which are replaced by other
Latin-script languages (recorded in ``Dataset.meta`` and ``source``).
"""

from __future__ import annotations

import re
from itertools import islice

import numpy as np

SUITE_LANGUAGES = ("en", "nl", "de", "es", "fr", "pt", "sw", "zu", "fi", "sv")
# Substitutes tried in order for a suite language wordfreq lacks: Latin script, and unlike
# Malay ('ms', which shares most words with Indonesian) distinct from each other.
SUBSTITUTES = ("id", "fil", "it", "pl", "cs", "ro", "tr", "da")
LETTERS = "abcdefghijklmnopqrstuvwx"
WORD_LEN = 6
WORDS_PER_SAMPLE = 4
TOP_N = 50_000  # words taken from each frequency list (rarer entries are mostly noise)
TEST_POOL_FRACTION = 0.3
# Validation words are held out too (v2): with valid drawn from the training words, valid
# accuracy measured memorisation (about 6 points above test) and a search selected for it.
VALID_POOL_FRACTION = 0.15
POOL_OF_SPLIT = {"train": 0, "test": 1, "valid": 2}
VERSION = "2"
SPLITS = ("train", "valid", "test")
_WORD = re.compile(f"^[{LETTERS[0]}-{LETTERS[-1]}]{{{WORD_LEN}}}$")


def wordfreq_version() -> str:
    """Installed wordfreq version; part of the cache key since word lists change with it."""
    from importlib.metadata import version

    return version("wordfreq")


def choose_languages() -> tuple[list[str], dict[str, str]]:
    """The ten languages in label order, and {suite language: substitute} for missing ones."""
    from wordfreq import available_languages

    have = set(available_languages())
    spares = [lang for lang in SUBSTITUTES if lang in have and lang not in SUITE_LANGUAGES]
    chosen: list[str] = []
    substitutions: dict[str, str] = {}
    for lang in SUITE_LANGUAGES:
        if lang in have:
            chosen.append(lang)
            continue
        if not spares:
            raise RuntimeError(f"wordfreq has no substitute left for language {lang!r}")
        substitutions[lang] = spares.pop(0)
        chosen.append(substitutions[lang])
    return chosen, substitutions


def word_lists(languages: list[str]) -> dict[str, list[str]]:
    """Per language, the sorted six-letter a-x words from its top list found in no other."""
    from wordfreq import iter_wordlist

    words = {
        lang: {w for w in islice(iter_wordlist(lang, "best"), TOP_N) if _WORD.match(w)}
        for lang in languages
    }
    unique = {}
    for lang in languages:
        others = set().union(*(words[o] for o in languages if o != lang))
        unique[lang] = sorted(words[lang] - others)
    return unique


def encode(codes: np.ndarray) -> np.ndarray:
    """One-hot (N, 24) letter indices into (N, 1, 24, 24) uint8: row = position, col = letter."""
    n, length = codes.shape
    x = np.zeros((n, 1, length, len(LETTERS)), dtype=np.uint8)
    x[np.arange(n)[:, None], 0, np.arange(length)[None, :], codes] = 1
    return x


def decode(x: np.ndarray) -> list[str]:
    """Back from (N, 1, 24, 24) one-hot images to 24-letter strings (for checks)."""
    codes = np.asarray(x)[:, 0].argmax(axis=-1)
    return ["".join(LETTERS[i] for i in row) for row in codes]


def generate(counts: tuple[int, int, int], seed: int) -> dict[str, np.ndarray]:
    """Generate all splits.

    Returns ``{split}_x`` (uint8 one-hot, N x 1 x 24 x 24), ``{split}_y``, the components
    ``{split}_words`` (N, 4; indices into ``vocab``), and the vocabulary itself: ``vocab``
    (words), ``vocab_lang`` (label of each word) and ``vocab_pool`` (the split whose words
    it is, :data:`POOL_OF_SPLIT`: the three splits' words are disjoint), plus ``languages``
    (codes in label order).
    """
    languages, _ = choose_languages()
    lists = word_lists(languages)
    rng = np.random.default_rng([seed, 7])
    vocab: list[str] = []
    lang_of: list[int] = []
    pool_of: list[int] = []
    pools: dict[tuple[int, int], np.ndarray] = {}
    for label, lang in enumerate(languages):
        ordered = [lists[lang][i] for i in rng.permutation(len(lists[lang]))]
        k = round(len(ordered) * TEST_POOL_FRACTION)
        v = k + round(len(ordered) * VALID_POOL_FRACTION)
        for pool, part in ((1, ordered[:k]), (2, ordered[k:v]), (0, ordered[v:])):
            pools[label, pool] = np.arange(len(vocab), len(vocab) + len(part))
            vocab += part
            lang_of += [label] * len(part)
            pool_of += [pool] * len(part)
    vocab_arr = np.array(vocab, dtype=f"<U{WORD_LEN}")
    letter_codes = np.array([[LETTERS.index(ch) for ch in w] for w in vocab], dtype=np.int64)
    out: dict[str, np.ndarray] = {
        "vocab": vocab_arr,
        "vocab_lang": np.array(lang_of, dtype=np.int8),
        "vocab_pool": np.array(pool_of, dtype=np.int8),
        "languages": np.array(languages),
    }
    for split, n in zip(SPLITS, counts, strict=True):
        pool = POOL_OF_SPLIT[split]
        labels = rng.permutation(np.arange(n) % len(languages)).astype(np.int64)
        words = np.zeros((n, WORDS_PER_SAMPLE), dtype=np.int64)
        for label in range(len(languages)):
            where = np.flatnonzero(labels == label)
            words[where] = rng.choice(pools[label, pool], size=(where.size, WORDS_PER_SAMPLE))
        out[f"{split}_x"] = encode(letter_codes[words].reshape(n, -1))
        out[f"{split}_y"] = labels
        out[f"{split}_words"] = words.astype(np.int32)
    return out


def describe(substitutions: dict[str, str]) -> str:
    """One line on how the stand-in was made, for ``Dataset.meta``."""
    subs = ", ".join(f"{k}->{v}" for k, v in substitutions.items()) or "none"
    return (
        f"four six-letter a-x words of one language one-hot encoded as 24x24; words from the "
        f"top {TOP_N:,} of wordfreq {wordfreq_version()} lists, words shared by two "
        f"languages removed, train, valid and test words disjoint; language "
        f"substitutions: {subs}"
    )
