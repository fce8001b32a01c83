"""all-MiniLM-L6-v2 in plain torch: what ``SentenceTransformer`` computes, without its imports.

The sentence-transformer pipeline of the model is BERT (6 layers, 384 wide, 12 heads, exact
GELU), mean pooling over the real tokens, then unit length; the tokenizer is the model's own
``tokenizer.json`` (lower-cased WordPiece, ``[CLS] text [SEP]``) truncated at
``max_seq_length`` (256, from ``sentence_bert_config.json``). This module runs exactly that
on the package's ``model.safetensors`` with ``torch`` and ``tokenizers``. Importing
``sentence_transformers`` (which pulls in ``transformers`` and scikit-learn) costs about
5 CPU seconds, most of a cold ``nas rank`` on a large graph, while the few dozen distinct
node texts of even a 20,000-node graph take a fraction of a second to embed.
``tests/test_predictor_encode.py`` checks the vectors against ``SentenceTransformer``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


class MiniLM:
    """A BERT sentence encoder read from a sentence-transformers folder: texts -> unit vectors."""

    def __init__(self, folder: str | Path, device: str = "cpu") -> None:
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        self.folder = folder = Path(folder)
        cfg = json.loads((folder / "config.json").read_text())
        st_cfg = json.loads((folder / "sentence_bert_config.json").read_text())
        pool = json.loads((folder / "1_Pooling" / "config.json").read_text())
        if cfg.get("hidden_act") != "gelu" or not pool.get("pooling_mode_mean_tokens"):
            raise ValueError(f"{folder}: not a mean-pooled BERT with GELU")
        self.heads = int(cfg["num_attention_heads"])
        self.layers = int(cfg["num_hidden_layers"])
        self.eps = float(cfg["layer_norm_eps"])
        self.max_len = int(st_cfg["max_seq_length"])
        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tok.no_padding()  # the file's own fixed 128 padding and truncation are not used
        self.tok.enable_truncation(self.max_len)
        self.pad_id = int(cfg.get("pad_token_id", 0))
        self.device = torch.device(device)
        self.w = load_file(str(folder / "model.safetensors"), device=str(self.device))

    def _ln(self, x: torch.Tensor, name: str) -> torch.Tensor:
        w = self.w
        return F.layer_norm(x, x.shape[-1:], w[f"{name}.weight"], w[f"{name}.bias"], self.eps)

    def _lin(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean-pooled, unit-length sentence vectors of one padded batch."""
        w, (b, n) = self.w, ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._ln(x, "embeddings.LayerNorm")
        d = x.shape[-1] // self.heads
        keep = mask.bool()[:, None, None, :]  # (b, 1, 1, n): attend to real tokens only
        for i in range(self.layers):
            p = f"encoder.layer.{i}"
            q, k, v = (
                self._lin(x, f"{p}.attention.self.{m}").view(b, n, self.heads, d).transpose(1, 2)
                for m in ("query", "key", "value")
            )
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=1 / math.sqrt(d))
            a = self._lin(a.transpose(1, 2).reshape(b, n, -1), f"{p}.attention.output.dense")
            x = self._ln(a + x, f"{p}.attention.output.LayerNorm")
            h = F.gelu(self._lin(x, f"{p}.intermediate.dense"))
            x = self._ln(self._lin(h, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        m = mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(len(texts), hidden) float32 unit vectors; batches of similar length (less padding)."""
        out = np.zeros((len(texts), self.w["pooler.dense.bias"].shape[0]), np.float32)
        if not texts:
            return out
        enc = self.tok.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(enc[i].ids))
        with torch.inference_mode():
            for s in range(0, len(order), batch_size):
                part = order[s : s + batch_size]
                n = max(len(enc[i].ids) for i in part)
                ids = torch.full((len(part), n), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(part), n), dtype=torch.long)
                for r, i in enumerate(part):
                    t = enc[i].ids
                    ids[r, : len(t)] = torch.tensor(t)
                    mask[r, : len(t)] = 1
                dev = self.device
                out[part] = self._forward(ids.to(dev), mask.to(dev)).cpu().numpy()
        return out
