"""Semantic search at scale (embeddings, roadmap 3.2): top-10 over N stored vectors through
pgvector's HNSW cosine index, its latency and its recall against exact search, and the
embedding throughput of one worker (texts/s on one core, the offline MiniLM ONNX model).

    python bench/embeddings_search.py [--count 100000] [--queries 200] [--ef 40,64,100]

Starts a throwaway embedded PostgreSQL (or uses DATABASE_URL), migrated. The stored vectors
are made from real embeddings: 512 customer questions embedded by the model, and N vectors
drawn around them (Gaussian noise, renormalised), loaded with COPY, then the HNSW index is
built (m=16, ef_construction=64, pgvector's defaults). Queries are fresh draws around the
same questions; exact top-10 is computed with numpy over all N. Budget (issue 25): p95
under 20 ms with recall >= 0.95.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

SUBJECTS = ["a hibachi party", "the chef", "my booking", "the deposit", "our dinner", "the grill", "the menu",
            "a birthday party", "the event", "the travel fee", "a wedding", "the payment"]
ASKS = ["How much is {}?", "Can I change {}?", "I want to cancel {}", "When does {} start?",
        "Is {} safe for nut allergies?", "Can we move {} to Sunday?", "Do you offer vegan options for {}?",
        "What do I need to prepare for {}?", "Is there a minimum for {}?", "Can I get a refund for {}?",
        "How many guests fit {}?", "Who do I call about {}?", "Is tax included in {}?", "What if it rains on {}?",
        "Can kids join {}?", "Do you bring plates for {}?", "How early should I book {}?",
        "Is gratuity included for {}?", "Can I pay cash for {}?", "Does {} include dessert?",
        "Can {} be indoors?", "How long does {} last?", "Can I add shrimp to {}?", "Is {} available on holidays?",
        "Can you text me about {}?", "Why was I charged for {}?", "Can I add guests to {}?",
        "Is parking needed for {}?", "Do you do sake with {}?", "How loud is {}?", "Can I tip for {}?",
        "Do you cater {} in Brooklyn?", "Does {} come with noodles?", "Is {} halal?", "Do I get points for {}?",
        "What time can you arrive for {}?", "Can {} be a surprise?", "Is there a kids menu for {}?",
        "Do you need a power outlet for {}?", "Can I see photos of {}?", "Can I book {} for twelve people?",
        "Do I need a permit for {}?", "Is {} covered by insurance?"]


def texts(n: int = 512) -> list[str]:
    return [a.format(s) for a, s in itertools.islice(itertools.product(ASKS, SUBJECTS), n)]


async def throughput(port, sample: list[str], batch: int = 32) -> float:
    await port.embed(sample[:batch])  # load the model
    started = time.perf_counter()
    for i in range(0, len(sample), batch):
        await port.embed(sample[i:i + batch])
    return len(sample) / (time.perf_counter() - started)


def draws(bases: np.ndarray, n: int, rng, noise: float) -> np.ndarray:
    out = bases[rng.integers(0, len(bases), n)] + rng.normal(0, noise, (n, bases.shape[1])).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def literal(v) -> str:
    return "[" + ",".join(f"{x:.6g}" for x in v) + "]"


async def main(count: int, queries: int, efs: list[int], noise: float) -> None:
    import psycopg

    from myhibachi.core.app import create_app
    from myhibachi.plugins.embeddings import EmbeddingsPlugin

    settings, url, db = harness.scratch_database()
    ctx = create_app([EmbeddingsPlugin()], settings=settings, database=db).state.ctx
    port = ctx.ports.embeddings
    sample = texts()
    rate = await throughput(port, sample)
    print({"machine": harness.machine(), "model": port.model, "worker_texts_per_s_one_thread": round(rate, 1)},
          flush=True)
    bases = np.array(await port.embed(sample), dtype=np.float32)
    rng = np.random.default_rng(25)
    stored = draws(bases, count, rng, noise)
    asked = draws(bases, queries, rng, noise)

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as pg:
        pg.execute("DROP INDEX IF EXISTS ix_ai_embeddings_hnsw")
        pg.execute("TRUNCATE ai_embeddings")
        started = time.perf_counter()
        with pg.cursor().copy("COPY ai_embeddings (id, kind, text_enc, key_id, model, dimensions, embedding) "
                              "FROM STDIN") as copy:
            for v in stored:
                copy.write_row((uuid.uuid4(), "bench", "-", "-", port.model, 384, literal(v)))
        loaded = time.perf_counter() - started
        pg.execute("SET maintenance_work_mem = '1GB'")
        started = time.perf_counter()
        pg.execute("CREATE INDEX ix_ai_embeddings_hnsw ON ai_embeddings USING hnsw (embedding vector_cosine_ops)")
        built = time.perf_counter() - started
        pg.execute("ANALYZE ai_embeddings")
        ids = [r[0] for r in pg.execute("SELECT id FROM ai_embeddings ORDER BY id")]
        order = {i: n for n, i in enumerate(ids)}
        matrix = np.array([np.array(r[1][1:-1].split(","), dtype=np.float32) for r in
                           pg.execute("SELECT id, embedding::text FROM ai_embeddings ORDER BY id")])
        exact = np.argsort(-(asked @ matrix.T), axis=1)[:, :10]
        print({"vectors": count, "copy_s": round(loaded, 1), "hnsw_build_s": round(built, 1)}, flush=True)
        sql = ("SELECT id FROM ai_embeddings WHERE model = %s ORDER BY embedding <=> %s::vector LIMIT 10")
        for ef in efs:
            pg.execute(f"SET hnsw.ef_search = {ef}")
            times, recall = [], []
            for q, truth in zip(asked, exact):
                started = time.perf_counter()
                got = [order[r[0]] for r in pg.execute(sql, (port.model, literal(q)))]
                times.append((time.perf_counter() - started) * 1000)
                recall.append(len(set(got) & set(truth.tolist())) / 10)
            print({"ef_search": ef, "queries": queries, "p50_ms": round(float(np.percentile(times, 50)), 2),
                   "p95_ms": round(float(np.percentile(times, 95)), 2), "recall_at_10": round(float(np.mean(recall)), 3)},
                  flush=True)
    await db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef", default="40,64,100")
    parser.add_argument("--noise", type=float, default=0.03, help="per-dimension sigma of the draws")
    args = parser.parse_args()
    asyncio.run(main(args.count, args.queries, [int(e) for e in args.ef.split(",")], args.noise))
