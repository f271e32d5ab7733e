"""Macro-F1 of ml_ops' intent classifier on the labelled customer questions of its tests.

    python bench/ml_ops_intents.py [--seeds 10] [--adapter offline]

The same code as the training job and the evaluation (``training._fit``, ``classifier``):
40 questions in 4 intents (booking, pricing, allergy, cancellation), a stratified 25 %
held out, once per seed; prints accuracy and macro-F1 per seed and their mean, and the
time to embed and fit. ``--adapter`` is an embeddings adapter of the core's port.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


async def main(seeds: int, adapter: str) -> None:
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score

    from myhibachi.core.ports import BUILTIN, _import
    from myhibachi.plugins.ml_ops import training
    from tests.plugins.ml_ops.intents import examples

    factory = BUILTIN["embeddings"][adapter]
    ctx = SimpleNamespace(ports=SimpleNamespace(embeddings=_import(factory)(None)))
    rows = [{"seq": i, **e} for i, e in enumerate(examples())]
    f1s, accs, took = [], [], []
    for seed in range(seeds):
        started = time.perf_counter()
        splits, params = await training._fit(ctx, rows, 0.25, seed)
        took.append(time.perf_counter() - started)
        held = [r for r, s in zip(rows, splits) if s == "test"]
        vectors = np.array(await ctx.ports.embeddings.embed([r["text"] for r in held]))
        truth = [r["label"] for r in held]
        predicted = training.classifier(params).predict(vectors).tolist()
        accs.append(accuracy_score(truth, predicted))
        f1s.append(f1_score(truth, predicted, average="macro"))
        print(f"seed {seed}: accuracy {accs[-1]:.2f}  macro-F1 {f1s[-1]:.3f}  ({len(held)} held out)")
    print(f"{adapter}: mean accuracy {statistics.mean(accs):.3f}, mean macro-F1 {statistics.mean(f1s):.3f} "
          f"(min {min(f1s):.3f}, max {max(f1s):.3f}) over {seeds} splits; embed+fit {statistics.median(took)*1000:.0f} ms"
          " median")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--adapter", default="offline")
    args = parser.parse_args()
    asyncio.run(main(args.seeds, args.adapter))
