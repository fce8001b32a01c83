"""The graph ranking model: frozen node-text embeddings, message passing, pooled score.

Each node starts from the 384-d MiniLM vector of its text (frozen), projected to ``hidden``
dimensions. ``layers`` rounds of message passing follow the real edges in both directions
with separate weights (mean over producers, mean over consumers, plus the node itself,
residual, LayerNorm). Mean and max pooling per graph, joined with two global features
(log10 parameters and FLOPs, standardised), feed an MLP head that outputs one score;
higher means better. Options (defaults give the v1 model, so old configs load): the
globals as a separate linear term or left out (``globals_mode``), dropout on the pooled
features, and an ensemble of ``members`` rankers whose scaled scores are averaged.
Two options make a ranker transfer to spaces of other sizes: ``globals_norm='set'`` gives
the head each graph's percentile rank of params and FLOPs within the set being scored
(one space, one folder) instead of the training scale, and ``prior='params'`` (or
``'flops'``) makes the score that rank times ``prior_weight`` plus a learned correction
bounded by ``correction`` (a residual on the signal, so the ranking cannot drift far from
it). ``signals`` names more data-free signals (depth, node count, width, the NASWOT
proxy: :data:`~nas.predictors.signals.HEAD_SIGNALS`) the head sees beside params and FLOPs,
as set ranks too (a graph without the signal, e.g. NASWOT skipped, sits at the middle).
Many graphs are batched by concatenating their nodes with offsets; ``ranks`` carries
the set ranks (the batch's own when the caller gives none).

Weights are saved as ``model.safetensors`` plus ``config.json`` (never pickle).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.exceptions import NasError

FORMAT = "nas-graph-predictor"
VERSION = 1


class PredictorError(NasError, ValueError):
    """A predictor folder is missing, damaged or of another format."""


@dataclass
class ModelConfig:
    """Hyper-parameters and the feature scaling the weights were trained with."""

    in_dim: int = 384
    hidden: int = 64
    layers: int = 4
    head_hidden: int = 64
    n_globals: int = 2
    global_mean: list[float] = field(default_factory=lambda: [6.0, 8.0])
    global_std: list[float] = field(default_factory=lambda: [1.0, 1.0])
    # how the globals enter: "mlp" (into the head, the v1 model), "linear" (a separate
    # linear term added to the head's score, so it extrapolates monotonically to sizes
    # outside the training range) or "none" (structure only)
    globals_mode: str = "mlp"
    dropout: float = 0.0  # on the pooled features, training only
    members: int = 1  # > 1: an ensemble of that many rankers, their scaled scores averaged
    # "train": globals standardised with the training rows' mean/std (v1); "set": each
    # graph's percentile rank within the scored set, minus 0.5 (scale-free across spaces)
    globals_norm: str = "train"
    # "none" (v1), "params" or "flops": score = prior_weight * (set rank - 0.5) of that
    # signal + correction * tanh(head), a bounded correction on top of the signal's ranking
    prior: str = "none"
    prior_weight: float = 4.0
    correction: float = 1.0
    # more set-ranked head inputs (names in signals.HEAD_SIGNALS); needs globals_norm="set"
    signals: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class GraphBatch:
    """Graphs joined into one: node text rows, edges with offsets and graph membership."""

    vocab: torch.Tensor  # (V, in_dim) float: one embedding per distinct node text
    idx: torch.Tensor  # (N,) long: each node's row in ``vocab``
    edges: torch.Tensor  # (E, 2) long, global node indices
    graph: torch.Tensor  # (N,) long
    globals: torch.Tensor  # (G, n_globals) float, raw (log10 params, log10 FLOPs)
    num_graphs: int
    # (G, 2 + s): percentile ranks in the set of params, FLOPs and the model's signals
    ranks: torch.Tensor | None = None


PRIORS = {"params": 0, "flops": 1}  # prior name -> its column in ``ranks``
MAX_HIDDEN = 4096  # a graph ranker's widest hidden size (64 ranks every bench here)
MAX_LAYERS = 64  # message-passing rounds (4 reach across an NB201 cell)
MAX_BATCH_NODES = 50_000  # nodes scored at once (unless one graph has more)


def set_ranks(
    params: Sequence[int], flops: Sequence[int], extra: np.ndarray | None = None
) -> np.ndarray:
    """(n, 2 + s) percentile ranks in [0, 1] within one scored set of params, FLOPs and the
    ``extra`` (n, s) signal columns (ties share their mean rank; NaN values and a set of
    one sit at 0.5). Plain numpy: ``nas rank`` needs no scipy."""
    cols = [np.asarray(params, np.float64), np.asarray(flops, np.float64)]
    if extra is not None:
        extra = np.asarray(extra, np.float64)
        if extra.ndim != 2:  # one column given flat
            extra = extra.reshape(len(cols[0]), -1)
        cols += list(extra.T)
    n = len(cols[0])
    out = np.full((n, len(cols)), 0.5)
    for j, x in enumerate(cols):
        ok = np.flatnonzero(~np.isnan(x))
        if len(ok) < 2:
            continue
        order = ok[np.argsort(x[ok], kind="stable")]
        _, first, count = np.unique(x[order], return_index=True, return_counts=True)
        out[order, j] = np.repeat(first + (count - 1) / 2, count) / (len(ok) - 1)
    return out


def make_batch(
    vocab_emb: np.ndarray | torch.Tensor,
    graphs: Sequence[tuple[np.ndarray, np.ndarray]],
    params: Sequence[int],
    flops: Sequence[int],
    ranks: np.ndarray | None = None,
) -> GraphBatch:
    """Batch graphs given as (text indices into ``vocab_emb``, local edges); ``ranks``:
    their params/FLOPs ranks within the whole scored set (default: within this batch)."""
    idx, edges, member = [], [], []
    offset = 0
    for k, (ti, ed) in enumerate(graphs):
        ti = np.asarray(ti, np.int64)
        ed = np.asarray(ed, np.int64).reshape(-1, 2)
        idx.append(ti)
        edges.append(ed + offset)
        member.append(np.full(len(ti), k, np.int64))
        offset += len(ti)
    cat = np.concatenate
    g = np.log10(
        np.maximum(1, np.stack([np.asarray(params, np.float64), np.asarray(flops, np.float64)], 1))
    )
    return GraphBatch(
        vocab=torch.as_tensor(np.asarray(vocab_emb, np.float32)),
        idx=torch.from_numpy(cat(idx) if idx else np.zeros(0, np.int64)),
        edges=torch.from_numpy(cat(edges) if edges else np.zeros((0, 2), np.int64)),
        graph=torch.from_numpy(cat(member) if member else np.zeros(0, np.int64)),
        globals=torch.as_tensor(g, dtype=torch.float32).reshape(len(graphs), 2),
        num_graphs=len(graphs),
        ranks=torch.as_tensor(
            set_ranks(params, flops) if ranks is None else ranks, dtype=torch.float32
        ).reshape(len(graphs), -1),
    )


def _mean_agg(h: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Mean of h[src] over edges, gathered at dst (zero where no edge arrives)."""
    out = torch.zeros_like(h).index_add_(0, dst, h[src])
    deg = torch.zeros(h.shape[0], 1, dtype=h.dtype).index_add_(
        0, dst, torch.ones(dst.shape[0], 1, dtype=h.dtype)
    )
    return out / deg.clamp(min=1)


class MessagePassing(nn.Module):
    """One round: self, forward (from producers) and backward (from consumers) messages."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.self_lin = nn.Linear(hidden, hidden)
        self.fwd = nn.Linear(hidden, hidden, bias=False)
        self.bwd = nn.Linear(hidden, hidden, bias=False)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, h: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        src, dst = edges[:, 0], edges[:, 1]
        m = self.self_lin(h) + self.fwd(_mean_agg(h, src, dst)) + self.bwd(_mean_agg(h, dst, src))
        return self.norm(h + torch.relu(m))


class GraphRanker(nn.Module):
    """Node embeddings -> message passing -> mean+max pooling (+ globals) -> score."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        c = self.config
        for name, value, low, top in (
            ("hidden", c.hidden, 1, MAX_HIDDEN),
            ("layers", c.layers, 0, MAX_LAYERS),
        ):
            if not low <= value <= top:
                raise PredictorError(f"{name} must lie in {low}..{top}, got {value:,}.")
        if c.members > 1:  # each member a full single ranker; scores averaged
            one = replace(c, members=1, meta={})
            self.parts = nn.ModuleList(GraphRanker(one) for _ in range(c.members))
            self.register_buffer("part_scale", torch.ones(c.members))
            return
        self.inp = nn.Sequential(nn.Linear(c.in_dim, c.hidden), nn.ReLU(), nn.LayerNorm(c.hidden))
        self.rounds = nn.ModuleList(MessagePassing(c.hidden) for _ in range(c.layers))
        if c.globals_mode not in ("mlp", "linear", "none"):
            raise PredictorError(f"unknown globals_mode {c.globals_mode!r}.")
        if c.globals_norm not in ("train", "set"):
            raise PredictorError(f"unknown globals_norm {c.globals_norm!r}.")
        if c.prior != "none" and c.prior not in PRIORS:
            raise PredictorError(f"unknown prior {c.prior!r}; choose none, params or flops.")
        _check_signals(c)
        n_glob = c.n_globals + len(c.signals)
        in_head = 2 * c.hidden + (n_glob if c.globals_mode == "mlp" else 0)
        self.drop = nn.Dropout(c.dropout)  # no weights: old state dicts still load
        self.head = nn.Sequential(
            nn.Linear(in_head, c.head_hidden),
            nn.ReLU(),
            nn.Linear(c.head_hidden, 1),
        )
        if c.globals_mode == "linear":
            self.glob_lin = nn.Linear(n_glob, 1, bias=False)
        self.register_buffer("g_mean", torch.tensor(c.global_mean, dtype=torch.float32))
        self.register_buffer("g_std", torch.tensor(c.global_std, dtype=torch.float32))

    def forward(self, b: GraphBatch) -> torch.Tensor:
        """Scores, one per graph, shape (num_graphs,)."""
        if self.config.members > 1:
            parts = torch.stack([p(b) for p in self.parts], 1)
            return (parts * self.part_scale).mean(1)
        h = self.inp(b.vocab)[b.idx]  # per-node map, so project each distinct text once
        for layer in self.rounds:
            h = layer(h, b.edges)
        g = b.num_graphs
        count = torch.zeros(g, 1).index_add_(0, b.graph, torch.ones(h.shape[0], 1))
        mean = torch.zeros(g, h.shape[1]).index_add_(0, b.graph, h) / count.clamp(min=1)
        idx = b.graph.unsqueeze(1).expand_as(h)
        mx = torch.full((g, h.shape[1]), -1e4).scatter_reduce(0, idx, h, "amax")
        c = self.config
        ranks = b.ranks
        if ranks is None:  # a batch built by hand: it is its own set
            ranks = torch.as_tensor(set_ranks(*b.globals.numpy().T), dtype=torch.float32)
        want = c.n_globals + len(c.signals)
        if ranks.shape[1] < want:  # signals not given: every graph at the middle
            ranks = torch.cat([ranks, torch.full((g, want - ranks.shape[1]), 0.5)], 1)
        norm = c.globals_norm == "set"
        glob = ranks - 0.5 if norm else (b.globals - self.g_mean) / self.g_std
        if c.globals_mode == "mlp":
            score = self.head(self.drop(torch.cat([mean, mx, glob], 1))).squeeze(1)
        else:
            score = self.head(self.drop(torch.cat([mean, mx], 1))).squeeze(1)
            if c.globals_mode == "linear":
                score = score + self.glob_lin(glob).squeeze(1)
        if c.prior == "none":
            return score
        prior = ranks[:, PRIORS[c.prior]] - 0.5
        return c.prior_weight * prior + c.correction * torch.tanh(score)

    def save(self, folder: str | Path) -> Path:
        """Write ``model.safetensors`` and ``config.json`` into ``folder``."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"), metadata={"format": FORMAT})
        info = {"format": FORMAT, "version": VERSION, **asdict(self.config)}
        (folder / "config.json").write_text(json.dumps(info, indent=1) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> GraphRanker:
        """Read a model written by :meth:`save`."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            what = "no such folder" if not folder.exists() else "no config.json"
            raise PredictorError(
                f"{folder} is not a predictor model ({what}); give a folder written by "
                "`nas predictor train`."
            )
        try:
            info = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError) as e:
            raise PredictorError(
                f"{folder}: cannot read config.json: {e}".splitlines()[0]
            ) from None
        if not isinstance(info, dict) or info.get("format") != FORMAT:
            raise PredictorError(f"{folder}: config.json is not a {FORMAT} config.")
        if info.get("version") != VERSION:
            raise PredictorError(f"{folder}: predictor version {info.get('version')} unknown.")
        known = set(ModelConfig.__dataclass_fields__)
        try:
            config = ModelConfig(**{k: v for k, v in info.items() if k in known})
            model = cls(config)
            state = load_file(str(folder / "model.safetensors"))
            model.load_state_dict(state, strict=True)
        except (OSError, SafetensorError, RuntimeError, TypeError) as e:
            raise PredictorError(
                f"{folder}: cannot load the weights: {e}".splitlines()[0]
            ) from None
        return model.eval()


def _check_signals(c: ModelConfig) -> None:
    """Raise PredictorError for unknown head signals, or signals without set globals."""
    from nas.predictors.signals import HEAD_SIGNALS

    bad = [x for x in c.signals if x not in HEAD_SIGNALS]
    if bad:
        raise PredictorError(
            f"unknown signal {bad[0]!r}; choose from {', '.join(HEAD_SIGNALS.names())}."
        )
    if c.signals and c.globals_norm != "set":
        raise PredictorError("head signals are set ranks: they need globals_norm 'set'.")


#: The bundled default (NB201) and the bundled multi-space model ``nas rank`` switches to
#: for a set of files mostly outside the default's training domain.
DEFAULT_MODEL, TRANSFER_MODEL = "nb201-v1", "transfer-v3"


def bundled_dir(name: str = DEFAULT_MODEL) -> Path:
    """Folder of a predictor shipped with the package."""
    return Path(__file__).resolve().parent / "weights" / name


class Predictor:
    """A trained GraphRanker plus the node embedder: scores records or ONNX files."""

    def __init__(self, model: GraphRanker, embedder: Any = None, name: str = "") -> None:
        self.model = model.eval()
        self._embedder = embedder
        self.name = name

    @classmethod
    def load(cls, folder: str | Path | None = None, embedder: Any = None) -> Predictor:
        """The predictor in ``folder`` (the bundled one when None), named by its folder."""
        path = Path(folder or bundled_dir())
        return cls(GraphRanker.load(path), embedder, path.name)

    @property
    def embedder(self) -> Any:
        """The node embedder, created on first use."""
        if self._embedder is None:
            from nas.predictors.embed import Embedder

            self._embedder = Embedder()
        return self._embedder

    def score_records(self, records: Sequence[Any], batch_size: int = 64) -> np.ndarray:
        """Scores of GraphRecords (texts, edges, params, flops); higher is better. The
        records are one scored set (a model with set globals ranks their sizes among them).
        A batch holds up to ``batch_size`` graphs and :data:`MAX_BATCH_NODES` nodes (or one
        graph), so memory follows the largest graph, not the set."""
        vocab: dict[str, int] = {}
        for r in records:
            for t in r.texts:
                vocab.setdefault(t, len(vocab))
        emb = self.embedder.embed(list(vocab)) if vocab else np.zeros((0, 384), np.float32)
        from nas.predictors.signals import record_signals

        extra = record_signals(records, self.model.config.signals)
        ranks = set_ranks([r.params for r in records], [r.flops for r in records], extra)
        out = []
        i = 0
        with torch.no_grad():
            while i < len(records):
                j, nodes = i + 1, len(records[i].texts)
                while j < len(records) and j - i < batch_size:
                    nodes += len(records[j].texts)
                    if nodes > MAX_BATCH_NODES:
                        break
                    j += 1
                part = records[i:j]
                graphs = [
                    (
                        np.array([vocab[t] for t in r.texts], np.int64),
                        np.asarray(r.edges, np.int64).reshape(-1, 2),
                    )
                    for r in part
                ]
                b = make_batch(
                    emb, graphs, [r.params for r in part], [r.flops for r in part], ranks[i:j]
                )
                out.append(self.model(b).numpy())
                i = j
        return np.concatenate(out) if out else np.zeros(0, np.float32)
