"""Prompts for the explainer and the detection and fuzzing scorers, and the fuzzing marks.

Messages are OpenAI-style chat lists (``[{"role": "system", ...}, {"role": "user", ...}]``) that any
:class:`~rsae_utils.autointerp.llm.base.LLMBackend` accepts. Marked tokens are written ``<<like this>>``;
consecutive marked tokens share one pair of marks.

Marking rule (explainer and fuzzing positives): a token is *active* when its activation is > 0 and at least
``mark_frac`` (0.3 in the paper) times the window's maximum. Fuzzing negatives (windows where the latent never
fires) get ``n`` marks on random tokens, ``n`` = the rounded mean number of active tokens over the latent's
positive scoring windows (at least 1).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

OPEN, CLOSE = "<<", ">>"

Decode = Callable[[Sequence[int]], list[str]]  # token ids -> one display string per token


class TokenDecoder:
    """Token id -> display string, memoised; wraps a Hugging Face tokenizer (or any ``decode`` callable)."""

    def __init__(self, tokenizer):
        self._decode = tokenizer.decode if hasattr(tokenizer, "decode") else tokenizer
        self._memo: dict[int, str] = {}

    def token(self, tid: int) -> str:
        tid = int(tid)
        if tid not in self._memo:
            self._memo[tid] = self._decode([tid])
        return self._memo[tid]

    def __call__(self, ids: Sequence[int]) -> list[str]:
        return [self.token(t) for t in ids]

    def text(self, ids: Sequence[int]) -> str:
        """The tokens decoded together: a character split over several tokens comes out whole."""
        return self._decode([int(t) for t in ids])


def clean_token(s: str) -> str:
    """Keep one window on one line: newlines and tabs are shown as ``\\n`` and ``\\t``."""
    return s.replace("\r", "").replace("\n", "\\n").replace("\t", "\\t")


def active_mask(acts: Sequence[float], mark_frac: float = 0.3) -> np.ndarray:
    """Tokens whose activation is > 0 and >= ``mark_frac`` x the window maximum."""
    a = np.asarray(acts, dtype=float)
    m = a.max() if a.size else 0.0
    if m <= 0:
        return np.zeros(a.shape, dtype=bool)
    return (a > 0) & (a >= mark_frac * m)


def mark_text(strs: Sequence[str], mask: Sequence[bool], open_: str = OPEN, close: str = CLOSE) -> str:
    """Join token strings, wrapping each run of consecutive marked tokens in one ``<<...>>``."""
    out: list[str] = []
    inside = False
    for s, m in zip(strs, mask, strict=True):
        if m and not inside:
            out.append(open_)
            inside = True
        elif not m and inside:
            out.append(close)
            inside = False
        out.append(clean_token(s))
    if inside:
        out.append(close)
    return "".join(out)


def plain_text(strs: Sequence[str]) -> str:
    return "".join(clean_token(s) for s in strs)


def n_negative_marks(positive_acts: Sequence[Sequence[float]], mark_frac: float = 0.3) -> int:
    """Marks per fuzzing negative: rounded mean count of active tokens over the positives (>= 1)."""
    if not positive_acts:
        return 1
    counts = [int(active_mask(a, mark_frac).sum()) for a in positive_acts]
    return max(1, int(np.floor(np.mean(counts) + 0.5)))


def fuzz_marks(
    acts: Sequence[float], label: int, n_random: int, rng: np.random.Generator, mark_frac: float = 0.3
) -> np.ndarray:
    """Boolean mark mask of one fuzzing window.

    Positives (label 1) mark exactly their active tokens; negatives mark ``n_random`` distinct tokens chosen
    uniformly at random (capped at the window length).
    """
    a = np.asarray(acts, dtype=float)
    if label:
        return active_mask(a, mark_frac)
    mask = np.zeros(a.shape, dtype=bool)
    mask[rng.choice(a.size, size=min(n_random, a.size), replace=False)] = True
    return mask


# --------------------------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------------------------
EXPLAINER_SYSTEM = (
    "You are a meticulous AI researcher studying one neuron of a language model. You will see text examples "
    "in which the neuron fires. In each example the tokens where it fires are marked like <<this>>. "
    "Find what the marked tokens have in common (the tokens themselves, and the context before them) and "
    "describe the pattern in one short phrase. Answer with one line: 'Explanation: <phrase>'."
)

DETECTION_SYSTEM = (
    "You are an intelligent and careful linguist. You will be given an explanation of a text feature and "
    "several numbered text examples. Decide for each example whether the feature described by the explanation "
    "occurs in it. Answer only with a Python list of 1s and 0s, one number per example, in order "
    "(1 = the feature occurs, 0 = it does not), for example [1, 0, 0, 1, 0]."
)

FUZZING_SYSTEM = (
    "You are an intelligent and careful linguist. You will be given an explanation of a text feature and "
    "several numbered text examples in which some tokens are marked like <<this>>. Decide for each example "
    "whether the marked tokens are the ones the explanation describes. Answer only with a Python list of 1s "
    "and 0s, one number per example, in order (1 = the marks are correct, 0 = they are not), for example "
    "[1, 0, 0, 1, 0]."
)


def _numbered(texts: Sequence[str]) -> str:
    return "\n".join(f"Example {i + 1}: {t}" for i, t in enumerate(texts))


# One worked example before the real question: small models copy its format (a short phrase).
_EXPLAINER_SHOT = (
    [
        "the old <<cat>> slept on the warm mat by the door",
        "we adopted two <<cats>> and a dog last spring",
        "a <<cat>>'s whiskers help it judge narrow gaps",
    ],
    'Explanation: the word "cat" (and "cats")',
)
_EXPLAINER_QUESTION = "\n\nWhat do the marked tokens have in common?"


def explainer_messages(marked_texts: Sequence[str]) -> list[dict[str, str]]:
    """Ask for an explanation of the examples (each already marked with :func:`mark_text`), after one worked
    example of the expected answer."""
    shot, answer = _EXPLAINER_SHOT
    return [
        {"role": "system", "content": EXPLAINER_SYSTEM},
        {"role": "user", "content": _numbered(shot) + _EXPLAINER_QUESTION},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": _numbered(marked_texts) + _EXPLAINER_QUESTION},
    ]


def detection_messages(explanation: str, texts: Sequence[str]) -> list[dict[str, str]]:
    """Detection: explanation plus a batch of unmarked windows; the answer is one 0/1 per window."""
    n = len(texts)
    user = (
        f"Explanation: {explanation}\n\n{_numbered(texts)}\n\n"
        f"For each of the {n} examples, does the feature occur? Answer with a list of {n} numbers (1 or 0)."
    )
    return [{"role": "system", "content": DETECTION_SYSTEM}, {"role": "user", "content": user}]


def fuzzing_messages(explanation: str, marked_texts: Sequence[str]) -> list[dict[str, str]]:
    """Fuzzing: explanation plus a batch of marked windows; the answer is one 0/1 per window."""
    n = len(marked_texts)
    user = (
        f"Explanation: {explanation}\n\n{_numbered(marked_texts)}\n\n"
        f"For each of the {n} examples, are the marked tokens correct for the explanation? "
        f"Answer with a list of {n} numbers (1 or 0)."
    )
    return [{"role": "system", "content": FUZZING_SYSTEM}, {"role": "user", "content": user}]


def parse_explanation(text: str, max_chars: int = 200) -> str:
    """The explanation in a model reply: the text after the last 'Explanation:' if there is one, else the whole
    reply; lines joined with spaces (small models often write a header line ending in ':' and the content
    below it), surrounding quotes removed, cut at ``max_chars``."""
    text = (text or "").strip()
    hits = list(re.finditer(r"explanation\s*:", text, flags=re.IGNORECASE))
    if hits and text[hits[-1].end() :].strip():
        text = text[hits[-1].end() :]
    line = " ".join(ln.strip() for ln in text.splitlines() if ln.strip())
    if len(line) > 1 and line[0] == line[-1] and line[0] in "'\"`":  # a reply wrapped in quotes
        line = line[1:-1].strip()
    return line[:max_chars] if line else "(no explanation)"
