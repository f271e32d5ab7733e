"""How often the IVR understands words its menu does not know: nearest-centroid intents
(plugins/voice_ai/intents.py) over the configured embeddings engine, on caller phrasings
none of the labelled examples holds.

    python bench/voice_intents.py [--min-score 0.35] [--margin 0.1]

A right answer is the intent meant, or no guess for words that mean none (the menu then
replays); a wrong intent sends the caller down the wrong branch, which is worse than a replay.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from myhibachi.plugins.voice_ai import VoiceAiSettings, intents  # noqa: E402

CALLERS = [("We would love a chef for my daughter's birthday dinner", "book"),
           ("Do you come to Brooklyn on weekends", "book"), ("Can I get a quote for thirty people", "book"),
           ("We'd like a teppanyaki night at home", "book"), ("Can we push it to a later date", "change"),
           ("We now have eight people instead of twelve", "change"), ("The party moved to my sister's house", "change"),
           ("I won't need the chef after all", "change"), ("I am calling to complain about the chef", "agent"),
           ("Nobody answered my emails", "agent"), ("I'd like to speak to a manager", "agent"),
           ("I was charged twice", "agent"), ("banana", None), ("what is the weather today", None),
           ("um yes hi", None), ("hello?", None)]


def engines():
    from myhibachi.core.ports import offline

    found = [offline.HashingEmbeddings()]
    try:
        from myhibachi.core.ports.local_ai import OnnxMiniLMEmbeddings
    except ImportError:  # the ONNX MiniLM adapter is the embeddings port's offline default once installed
        return found
    return [OnnxMiniLMEmbeddings(), *found]


async def main(min_score: float, margin: float) -> None:
    for engine in engines():
        right = wrong = 0
        started = time.perf_counter()
        for text, meant in CALLERS:
            got, _ = await intents.detect(engine, text, min_score=min_score, margin=margin)
            right, wrong = right + (got == meant), wrong + (got is not None and got != meant)
        print(f"{engine.model}: {right}/{len(CALLERS)} right, {wrong} wrong branch, "
              f"{len(CALLERS) - right - wrong} replayed; {(time.perf_counter() - started) * 1000:.0f} ms "
              f"(min_score {min_score}, margin {margin})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    defaults = VoiceAiSettings()
    parser.add_argument("--min-score", type=float, default=defaults.intent_min_score)
    parser.add_argument("--margin", type=float, default=defaults.intent_margin)
    args = parser.parse_args()
    asyncio.run(main(args.min_score, args.margin))
