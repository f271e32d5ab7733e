"""Clustering of conversations: k-means (scikit-learn) over their stored vectors, the number
of clusters chosen by silhouette when not given, each cluster labelled by its top terms
(class-based TF-IDF: the words frequent in it and absent from the others)."""
from __future__ import annotations

import uuid

import numpy as np
import sqlalchemy as sa

from myhibachi.core import invalid, publish, vault
from myhibachi.plugins.embeddings.models import ai_clusterings, ai_clusters, ai_embeddings
from myhibachi.plugins.embeddings.service import aad

CONVERSATIONS = ("sms", "call", "feedback")
MOST_CLUSTERS = 12
TERMS = 3

_MEMBERS = (sa.select(ai_embeddings.c.id, ai_embeddings.c.source_id, ai_embeddings.c.text_enc,
                      ai_embeddings.c.key_id, sa.cast(ai_embeddings.c.embedding, sa.Text).label("vector"))
            .where(ai_embeddings.c.model == sa.bindparam("model"),
                   ai_embeddings.c.kind == sa.func.any(sa.bindparam("kinds")))
            .order_by(ai_embeddings.c.created_at.desc(), ai_embeddings.c.id).limit(sa.bindparam("most")))


def kmeans(vectors: np.ndarray, clusters: int | None, sample: int = 1000) -> tuple[np.ndarray, float | None]:
    """Cluster numbers per vector, and the silhouette (cosine) of the partition. Unit vectors:
    euclidean k-means groups them as cosine does. Without ``clusters`` the count (2 to 12) is
    the one with the best silhouette on a sample of ``sample`` vectors, then fitted on all. One
    thread, as a request should (5,000 texts: about 1.4 CPU s)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)

    def fit(points: np.ndarray, k: int) -> tuple[np.ndarray, float | None]:
        labels = KMeans(n_clusters=k, n_init=3, random_state=0).fit_predict(points)
        if not 2 <= len(set(labels)) < len(points):
            return labels, None
        return labels, float(silhouette_score(points, labels, metric="cosine", sample_size=min(len(points), sample),
                                              random_state=0))

    with threadpool_limits(1):
        if clusters is None:
            picked = vectors if len(vectors) <= sample else vectors[rng.choice(len(vectors), sample, replace=False)]
            scores = {k: fit(picked, k)[1] for k in range(2, min(MOST_CLUSTERS, len(picked) - 1) + 1)}
            clusters = max(scores, key=lambda k: -1 if scores[k] is None else scores[k])
        return fit(vectors, clusters)


def top_terms(texts: list[str], labels: np.ndarray, clusters: int, terms: int = TERMS) -> list[list[str]]:
    """Each cluster's ``terms`` words that weigh most in it against the whole set (c-TF-IDF)."""
    from sklearn.feature_extraction.text import CountVectorizer

    counter = CountVectorizer(stop_words="english", token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")
    try:
        counts = counter.fit_transform(texts)
    except ValueError:  # nothing but stop words
        return [[] for _ in range(clusters)]
    words = counter.get_feature_names_out()
    per = np.vstack([np.asarray(counts[labels == c].sum(axis=0)).ravel() for c in range(clusters)]).astype(float)
    tf = per / np.maximum(per.sum(axis=1, keepdims=True), 1)
    idf = np.log(clusters / np.maximum((per > 0).sum(axis=0), 1))  # 0 for a word of every cluster
    score = tf * idf
    return [[str(words[i]) for i in np.argsort(-row, kind="stable")[:terms] if row[i] > 0] for row in score]


async def cluster(conn, ctx, *, kinds: list[str], clusters: int | None, most: int) -> dict:
    """Cluster the latest ``most`` stored texts of ``kinds`` (of the port's model), store the
    run and its clusters, publish ``embedding.clustered``; answers the run with its clusters."""
    model = ctx.ports.embeddings.model
    rows = await conn.fetch_all(_MEMBERS, {"model": model, "kinds": kinds, "most": most})
    if len(rows) < 3 or (clusters is not None and clusters > len(rows)):
        raise invalid("clusters" if clusters is not None and len(rows) >= 3 else "kinds",
                      f"{len(rows)} stored conversations of these kinds: too few to cluster")
    box = vault(ctx)
    texts = [box.decrypt(r["text_enc"], r["key_id"], aad(r["id"])) for r in rows]
    vectors = np.array([np.array(r["vector"][1:-1].split(","), dtype=np.float32) for r in rows])
    labels, silhouette = kmeans(vectors, clusters)
    found = int(labels.max()) + 1
    terms = top_terms(texts, labels, found)
    run_id = uuid.uuid4()
    made = [{"id": uuid.uuid4(), "clustering_id": run_id, "terms": terms[c], "label": ", ".join(terms[c]) or "-",
             "embedding_ids": [r["id"] for r, n in zip(rows, labels) if n == c],
             "source_ids": [r["source_id"] for r, n in zip(rows, labels) if n == c]} for c in range(found)]
    made.sort(key=lambda m: (-len(m["embedding_ids"]), m["label"]))
    for position, m in enumerate(made):
        m |= {"position": position, "size": len(m["embedding_ids"])}
    run = {"id": run_id, "model": model, "kinds": kinds, "clusters": found, "texts": len(rows),
           "silhouette": silhouette}
    run["created_at"] = await conn.scalar(sa.insert(ai_clusterings).values(**run)
                                          .returning(ai_clusterings.c.created_at))
    await conn.run(sa.insert(ai_clusters), [{k: v for k, v in m.items() if k != "source_ids"} for m in made])
    await publish(conn, ctx, "embedding.clustered", {"clustering_id": str(run_id), "model": model, "kinds": kinds,
                                                     "clusters": found, "texts": len(rows)})
    return run | {"results": made}


async def clustering(conn, clustering_id: uuid.UUID) -> dict | None:
    """A stored run with its clusters (largest first), or None."""
    run = await conn.fetch_one(sa.select(ai_clusterings).where(ai_clusterings.c.id == clustering_id))
    if run is None:
        return None
    sources = (sa.select(sa.func.array_agg(ai_embeddings.c.source_id))
               .where(ai_embeddings.c.id == sa.func.any(ai_clusters.c.embedding_ids)).scalar_subquery())
    made = await conn.fetch_all(sa.select(ai_clusters, sources.label("source_ids"))
                                .where(ai_clusters.c.clustering_id == clustering_id).order_by(ai_clusters.c.position))
    return run | {"results": [m | {"source_ids": m["source_ids"] or []} for m in made]}
