"""What a caller wants, from their words: nearest centroid over the embeddings port's vectors
of labelled examples (the offline engine; a semantic embeddings adapter makes it better
without a change here). A guess that is not clearly nearer one intent than the others is no
guess: the menu then counts a failed try."""
from __future__ import annotations

import math

EXAMPLES: dict[str, tuple[str, ...]] = {
    "book": ("I would like to book a hibachi party", "Can I reserve a chef for my birthday dinner",
             "Do you have a date free next month for a party of twenty",
             "We want a hibachi chef at our house for a celebration", "How much is a private chef dinner for ten guests"),
    "change": ("I need to move my reservation to another day", "Can the chef come an hour later",
               "We will have fewer guests than we said", "Please cancel my event",
               "I want to update the address of my booking"),
    "agent": ("Let me speak with someone", "I have a complaint", "I want to talk to a real human",
              "I have a question about a refund", "Put me through to the manager"),
}
_centroids: dict[str, dict[str, list[float]]] = {}  # by embeddings model: the examples never change


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm else vector


async def _centroids_of(embeddings) -> dict[str, list[float]]:
    found = _centroids.get(embeddings.model)
    if found is None:
        labels = [label for label, texts in EXAMPLES.items() for _ in texts]
        vectors = await embeddings.embed([text for texts in EXAMPLES.values() for text in texts])
        found = {label: _unit([sum(col) / len(col) for col in zip(*[v for v, lab in zip(vectors, labels)
                                                                    if lab == label])])
                 for label in EXAMPLES}
        _centroids[embeddings.model] = found
    return found


async def detect(embeddings, text: str, *, min_score: float, margin: float) -> tuple[str | None, float]:
    """The intent nearest ``text`` and its cosine, or None when below ``min_score`` or not
    ``margin`` ahead of the next one."""
    centroids = await _centroids_of(embeddings)
    [vector] = await embeddings.embed([text])
    vector = _unit(vector)
    scores = sorted(((sum(a * b for a, b in zip(vector, c)), label) for label, c in centroids.items()), reverse=True)
    (best, label), (second, _) = scores[0], scores[1]
    return (label if best >= min_score and best - second >= margin else None), round(best, 3)
