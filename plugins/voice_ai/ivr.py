"""The phone menu as a declared state machine: each state says what it asks, which keypad
keys and spoken words lead where, how long it waits, and how many failed tries (an unknown
input or silence) it replays before it gives the caller to a person."""
from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class State:
    prompt: str
    keys: dict[str, str] = field(default_factory=dict)  # keypad digit -> next state
    words: dict[str, str] = field(default_factory=dict)  # spoken word -> next state
    free: str | None = None  # any speech leads there (the caller's request, kept as an utterance)
    intents: dict[str, str] = field(default_factory=dict)  # detected intent (intents.py) -> next state
    timeout: int = 5  # seconds of silence that count as a failed try
    retries: int = 2  # failed tries replayed; the next one goes to the fallback
    fallback: str = "agent"
    end: str | None = None  # a final state: routed (the menu reached its goal) or agent (a person)

    @property
    def listens(self) -> bool:
        return bool(self.keys or self.words or self.free)


_AGENT = {w: "agent" for w in ("agent", "person", "human", "representative", "operator", "someone")}

MENU: dict[str, State] = {
    "main": State(
        "Welcome to My Hibachi. To book a hibachi party, press 1 or say book. To change a booking, press 2 "
        "or say change. To talk to a person, press 0 or say agent.",
        keys={"1": "book", "2": "change", "0": "agent"},
        words={"book": "book", "reserve": "book", "reservation": "book", "party": "book",
               "change": "change", "reschedule": "change", "cancel": "change", "move": "change", **_AGENT},
        intents={"book": "book", "change": "change", "agent": "agent"}),
    "book": State("Great. Please say the date, the time and the number of guests for your party.",
                  words=_AGENT, free="book_taken", timeout=8),
    "change": State("Please say the date of your booking and what you would like to change.",
                    words=_AGENT, free="change_taken", timeout=8),
    "book_taken": State("Thank you. A chef coordinator will text you a quote shortly. Goodbye.", end="routed"),
    "change_taken": State("Thank you. We will confirm the change by text shortly. Goodbye.", end="routed"),
    "agent": State("Connecting you to a person.", end="agent"),
}
START = "main"
INTENTS = {"book": "book", "book_taken": "book", "change": "change", "change_taken": "change", "agent": "agent"}
SORRY = "Sorry, I did not get that. "


@dataclass(frozen=True)
class Step:
    input: str  # digits, speech or timeout
    value: str | None  # the key pressed, the word matched, or intent:<name> when the words were understood
    outcome: str  # moved, replayed, escalated
    state: str  # the state the caller is in after it
    failures: int  # failed tries in that state


def heard(state: State, speech: str) -> tuple[str | None, str | None]:
    """The first word of ``speech`` the state knows, and where it leads (else its free target)."""
    for word in re.findall(r"[a-z]+", speech.lower()):
        target = state.words.get(word) or state.words.get(word.removesuffix("ing")) or state.words.get(
            word.removesuffix("s"))
        if target:
            return word, target
    return None, state.free


def advance(name: str, failures: int, *, digits: str | None, speech: str | None, intent: str | None = None,
            menu=MENU) -> Step:
    """The caller's input in state ``name``, after ``failures`` failed tries there; ``intent``:
    what the words meant when no known word was said (detected by the caller of this)."""
    state = menu[name]
    if digits:
        kind, value, target = "digits", digits[:20], state.keys.get(digits[:1])
    elif speech and speech.strip():
        kind, (value, target) = "speech", heard(state, speech)
        if target is None and intent in state.intents:
            value, target = f"intent:{intent}", state.intents[intent]
    else:
        kind, value, target = "timeout", None, None
    if target:
        return Step(kind, value, "moved", target, 0)
    if failures + 1 > state.retries:
        return Step(kind, value, "escalated", state.fallback, 0)
    return Step(kind, value, "replayed", name, failures + 1)
