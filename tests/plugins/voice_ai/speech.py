"""Known sentences spoken by espeak-ng, and the word error rate of what comes back (numbers
normalised: "twelve", "12" and "12th" are one word; "7pm" is "7 pm")."""
from __future__ import annotations

import re
import shutil
import subprocess

SENTENCES = {
    "book": "Book a hibachi party for twelve guests next Saturday at seven pm.",
    "change": "Please change my booking to Sunday, March fourteenth.",
    "angry": "This is terrible, I am furious, I want my money back.",
    "happy": "Thank you so much, the hibachi dinner was wonderful.",
}

_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
          "sixteen seventeen eighteen nineteen").split()
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if i > 1}
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fifth": 5, "eighth": 8, "ninth": 9, "twelfth": 12}
NUMBERS = {**{w: i for i, w in enumerate(_UNITS)}, **_TENS, **_ORDINALS,
           **{w + "th": i for i, w in enumerate(_UNITS) if i > 3 and w + "th" not in _ORDINALS},
           **{w[:-1] + "ieth": n for w, n in _TENS.items()}}


def words(text: str) -> list[str]:
    """Lower-case words, number words as digits."""
    text = re.sub(r"\b([ap])\.m\.?", r"\1m", text.lower())
    tokens = re.findall(r"\d+|[a-z]+", re.sub(r"(\d+)(st|nd|rd|th)\b", r"\1", text))
    out: list[str] = []
    after_tens = False  # "twenty" then "five" is 25
    for token in tokens:
        value = NUMBERS.get(token)
        if after_tens and value is not None and value < 10:
            out[-1], after_tens = str(int(out[-1]) + value), False
            continue
        after_tens = token in _TENS
        out.append(str(value) if value is not None else token)
    return out


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: (substitutions + deletions + insertions) / reference words."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)] / max(len(ref), 1)


def speak(text: str) -> bytes:
    """``text`` as a WAV file, spoken by espeak-ng (US English, 140 words a minute)."""
    espeak = shutil.which("espeak-ng")
    assert espeak, "espeak-ng is needed to speak the test sentences (apt-get install espeak-ng)"
    return subprocess.run([espeak, "-v", "en-us", "-s", "140", "--stdout", text], check=True,
                          capture_output=True, timeout=10).stdout
