"""Semantic search at scale (embeddings, roadmap 3.2): top-10 over N stored vectors through
pgvector's HNSW cosine index (latency, and recall against exact search at the plugin's
ef_search), the worker's embedding throughput on one core, and the FAQ paraphrase hit rate.

    python bench/embeddings.py [--count 100000] [--queries 200] [--ef 40,64] [--data noise|mix]
    python bench/embeddings.py --home DIR --stop-after load    # a loaded machine: one step a run,
    python bench/embeddings.py --home DIR --stop-after index   # each under a minute; the data and
    python bench/embeddings.py --home DIR                      # index stay in DIR for the next

Starts a throwaway embedded PostgreSQL (or uses DATABASE_URL, or keeps one in --home),
migrated with the embeddings plugin. Worker: texts queued as an inbound conversation queues
them, then the worker's rounds (claim, unseal, embed in one call of the port, store) timed
until the queue is empty; the ONNX model runs on one thread, and texts per CPU second of the
process is what one free core does. Scale: --bases customer questions embedded by the model,
N unit vectors drawn from them (see ``draws``), stored as the plugin stores rows (sealed
text, model, dimension) with a binary COPY, then the HNSW index built (--m and
--ef-construction; the migration's index is m=16, ef_construction=64). Queries are fresh
draws, run through the plugin's own search (a transaction, SET LOCAL hnsw.ef_search, keyset
page of 10, texts unsealed) after 20 warm-up queries; exact top-10 is numpy over all N. FAQ:
the tests' labelled paraphrases searched (kind faq) among the N stored vectors. Budget
(issue 25): p95 under 20 ms with recall >= 0.95.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]
import harness  # noqa: E402

STARTED = time.perf_counter()


def say(figures: dict) -> None:
    print(figures | {"at_s": round(time.perf_counter() - STARTED, 1)}, flush=True)

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


def draws(bases: np.ndarray, n: int, rng, noise: float, data: str) -> tuple[np.ndarray, np.ndarray]:
    """``noise``: a question's vector plus isotropic noise (the neighbours of a query among the
    draws of its question are random in 384 dimensions: the hardest case for a graph index).
    ``mix``: a blend of two questions plus a little noise, nearer real texts, whose vectors
    lie close to what other texts mean."""
    picked = rng.integers(0, len(bases), n)
    out = bases[picked]
    if data == "mix":
        out = out + rng.uniform(0, 1, (n, 1)).astype(np.float32) * bases[rng.integers(0, len(bases), n)]
        noise = noise / 3
    out = out + noise * rng.standard_normal((n, bases.shape[1]), dtype=np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True), picked


def p(values, q: float) -> float:
    return round(float(np.percentile(values, q)), 2)


async def worker(ctx, sample: list[str]) -> dict:
    from myhibachi.plugins.embeddings import service

    await ctx.ports.embeddings.embed(sample[:8])  # the model loads once per process
    async with ctx.db.transaction() as conn:
        for n, text in enumerate(sample):
            await service.enqueue(conn, ctx, "sms", f"bench-{n}", text)
    started, cpu, rounds = time.perf_counter(), time.process_time(), 0
    while await service.embed_queued(ctx):
        rounds += 1
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    # CPU seconds of this process (the model on one thread, unsealing, the inserts' client side):
    # what one free core would take, whatever the machine's other work
    return {"worker_texts": len(sample), "rounds": rounds, "worker_texts_per_s_one_thread":
            round(len(sample) / seconds, 1), "worker_texts_per_cpu_s": round(len(sample) / cpu, 1)}


def row_id(n: int) -> uuid.UUID:
    return uuid.UUID(int=(25 << 96) + n)  # the same ids run after run, so a kept home is reused


def load(url: str, ctx, stored: np.ndarray, picked: np.ndarray, sample: list[str], args) -> None:
    """COPY the vectors in as the plugin's rows, then build the HNSW index; what a kept home
    (``--home``) already holds is not done again."""
    import psycopg
    from pgvector.psycopg import register_vector

    from myhibachi.core import vault
    from myhibachi.plugins.embeddings.service import aad

    box, model = vault(ctx), ctx.ports.embeddings.model
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as pg:
        register_vector(pg)
        index = f"hnsw_m{args.m}_ef{args.ef_construction}"
        pg.execute("DELETE FROM ai_embeddings WHERE kind <> 'bench'")  # only the drawn vectors are searched
        have = pg.execute("SELECT count(*), obj_description('ai_embeddings'::regclass) FROM ai_embeddings").fetchone()
        data = f"{args.data} {args.noise} {args.bases}"
        if have != (len(stored), data):
            pg.execute("TRUNCATE ai_embeddings")
            pg.execute("DROP INDEX IF EXISTS ix_ai_embeddings_hnsw")
            started = time.perf_counter()
            with pg.cursor().copy("COPY ai_embeddings (id, kind, text_enc, key_id, model, dimensions, embedding) "
                                  "FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["uuid", "varchar", "text", "varchar", "varchar", "int4", "vector"])
                for n, (v, q) in enumerate(zip(stored, picked)):
                    i = row_id(n)
                    copy.write_row((i, "bench", box.encrypt(sample[q], aad(i)), box.current_id,
                                    model, 384, v))
            pg.execute("ANALYZE ai_embeddings")
            pg.execute(f"COMMENT ON TABLE ai_embeddings IS '{data}'")
            say({"vectors": len(stored), "copy_s": round(time.perf_counter() - started, 1)})
        if args.stop_after == "load":
            return
        built = pg.execute("SELECT obj_description('ix_ai_embeddings_hnsw'::regclass)").fetchone() \
            if pg.execute("SELECT to_regclass('ix_ai_embeddings_hnsw')").fetchone()[0] else None
        if built is None or built[0] != index:
            pg.execute("DROP INDEX IF EXISTS ix_ai_embeddings_hnsw")
            pg.execute("SET maintenance_work_mem = '1GB'")
            pg.execute(f"SET max_parallel_maintenance_workers = {int(args.build_workers)}")
            started = time.perf_counter()
            pg.execute(f"CREATE INDEX ix_ai_embeddings_hnsw ON ai_embeddings USING hnsw (embedding vector_cosine_ops) "
                       f"WITH (m = {int(args.m)}, ef_construction = {int(args.ef_construction)})")
            pg.execute(f"COMMENT ON INDEX ix_ai_embeddings_hnsw IS '{index}'")
            say({"hnsw_build_s": round(time.perf_counter() - started, 1), "m": args.m,
                 "ef_construction": args.ef_construction, "build_workers": args.build_workers})


async def searches(ctx, asked: np.ndarray, exact: np.ndarray, ef: int) -> dict:
    from myhibachi.plugins.embeddings import service

    for q in asked[:20]:  # warm: the index and the rows it points at read into the cache once
        async with ctx.db.transaction() as conn:
            await service.nearest(conn, ctx, service.literal(q), limit=10, cursor=None, ef_search=ef)
    times, recall = [], []
    for q, truth in zip(asked, exact):
        started = time.perf_counter()
        async with ctx.db.transaction() as conn:
            rows, _ = await service.nearest(conn, ctx, service.literal(q), limit=10, cursor=None, ef_search=ef)
        times.append((time.perf_counter() - started) * 1000)
        recall.append(len({r["id"].int - row_id(0).int for r in rows} & set(truth.tolist())) / 10)
    return {"ef_search": ef, "queries": len(asked), "p50_ms": p(times, 50), "p95_ms": p(times, 95),
            "p99_ms": p(times, 99), "recall_at_10": round(float(np.mean(recall)), 3)}


async def faq_hits(ctx) -> dict:
    from myhibachi.plugins.embeddings import service
    from tests.plugins.embeddings.faq import FAQ, PARAPHRASES

    async with ctx.db.transaction() as conn:
        await service.store(conn, ctx, [{"text": t, "kind": "faq", "source_id": k} for k, t in FAQ.items()])
    hits, times = 0, []
    for question, expected in PARAPHRASES:
        started = time.perf_counter()
        async with ctx.db.transaction() as conn:
            rows, _ = await service.search(conn, ctx, question, limit=3, kind="faq")
        times.append((time.perf_counter() - started) * 1000)
        hits += rows[0]["source_id"] == expected
    return {"faq_top1": f"{hits}/{len(PARAPHRASES)}", "faq_hit_rate": round(hits / len(PARAPHRASES), 2),
            "search_with_query_embedding_p50_ms": p(times, 50)}


async def main(args) -> None:
    from myhibachi.core.app import create_app
    from myhibachi.plugins.embeddings import EmbeddingsPlugin

    settings, url, db = harness.scratch_database(only={"embeddings"}, home=args.home)
    ctx = create_app([EmbeddingsPlugin()], settings=settings, database=db).state.ctx
    port = ctx.ports.embeddings
    sample = texts()
    say({"machine": harness.machine(), "model": port.model, "load_avg": os.getloadavg()})
    if "worker" in args.parts:
        say(await worker(ctx, sample[:args.texts]))
    if "scale" in args.parts:
        bases = np.array(await port.embed(sample[:args.bases]), dtype=np.float32)
        rng = np.random.default_rng(25)
        stored, picked = draws(bases, args.count, rng, args.noise, args.data)
        asked, _ = draws(bases, args.queries, rng, args.noise, args.data)
        exact = np.argpartition(-(asked @ stored.T), 10, axis=1)[:, :10]  # the exact top-10, as sets
        load(url, ctx, stored, picked, sample, args)
        for ef in ([] if args.stop_after else args.ef):
            say(await searches(ctx, asked, exact, ef))
    if "faq" in args.parts:
        say(await faq_hits(ctx))
    say({"load_avg": os.getloadavg()})
    await db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef", default="40,64", type=lambda v: [int(e) for e in v.split(",")],
                        help="hnsw.ef_search values to measure (the plugin's default is 40)")
    parser.add_argument("--noise", type=float, default=0.03, help="per-dimension sigma of the draws")
    parser.add_argument("--data", choices=["noise", "mix"], default="noise", help="how the vectors are drawn")
    parser.add_argument("--m", type=int, default=16, help="HNSW m (the migration's index: 16)")
    parser.add_argument("--ef-construction", type=int, default=64, help="HNSW ef_construction (the migration's: 64)")
    parser.add_argument("--build-workers", type=int, default=1, help="max_parallel_maintenance_workers for the build")
    parser.add_argument("--bases", type=int, default=128, help="real questions the vectors are drawn around")
    parser.add_argument("--texts", type=int, default=256, help="texts the worker embeds")
    parser.add_argument("--home", type=Path, help="keep the embedded PostgreSQL and its loaded, indexed vectors "
                        "here, for the next run (a loaded machine does not load, index and measure in one minute)")
    parser.add_argument("--stop-after", choices=["load", "index"], help="with --home: stop once this step is done")
    parser.add_argument("--parts", default="worker,scale,faq", type=lambda v: set(v.split(",")),
                        help="worker, scale, faq (each part alone stays well under 60 s)")
    asyncio.run(main(parser.parse_args()))
