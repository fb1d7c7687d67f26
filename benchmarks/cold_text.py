"""Do text vectors help rank videos nobody has acted on? Measured against the simulator's oracle.

    python benchmarks/cold_text.py

300 of 1,500 simulated videos lose all their actions (they are "new"). For every viewer,
the content model ranks only those cold videos; the score is the hidden-taste value of its
top 10 as a share of the best possible top 10. Run twice: cold videos with their tags, and
cold videos uploaded without tags (title only), for MiniLM and TF-IDF/SVD text vectors and
text weights 0 (tags only), 0.5 (the default) and 2.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from recomind.domain.model import ActionWeights
from recomind.recommenders import embeddings
from recomind.recommenders.content import TagContent
from recomind.recommenders.data import training_data
from recomind.services.simulator import simulate


def main() -> None:
    world = simulate(n_videos=1500, n_users=300, actions_per_user=40, seed=5)
    rng = np.random.default_rng(0)
    cold_ids = set(rng.choice([v.video_id for v in world.videos], 300, replace=False))
    actions = [a for a in world.actions if a.video_id not in cold_ids]
    user_at = {u.user_id: i for i, u in enumerate(world.users)}
    untagged = [
        dataclasses.replace(v, tags=()) if v.video_id in cold_ids else v for v in world.videos
    ]
    for label, videos in (
        ("cold videos with tags", world.videos),
        ("cold videos without tags", untagged),
    ):
        print(f"-- {label}")
        data = training_data(videos, actions, ActionWeights())
        histories = data.user_histories()
        for choice in ("auto", "off"):
            embeddings.configure(choice, 100_000)
            for weight in (0.0, 0.5, 2.0):
                model = TagContent(text_weight=weight).fit(data)
                print(
                    f"{model.text_model_:17s} text_weight {weight}: cold top-10 reaches "
                    f"{share_of_oracle(world, data, model, histories, user_at):.3f} of the oracle"
                )


def share_of_oracle(world, data, model, histories, user_at) -> float:  # type: ignore[no-untyped-def]
    cold = np.flatnonzero(model.cold_)
    shares = []
    for u, history in enumerate(histories):
        affinity = world.affinity(user_at[str(data.user_ids[u])])
        top = cold[np.argsort(-model.score(history)[cold], kind="stable")[:10]]
        shares.append(affinity[top].mean() / np.sort(affinity[cold])[::-1][:10].mean())
    return float(np.mean(shares))


if __name__ == "__main__":
    main()
