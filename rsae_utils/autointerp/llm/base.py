"""The answer format of the scorers, the backend protocol every LLM backend implements, and what counts as a
usable chat completion (:func:`completion_problem`).

Answer format
-------------
The scorers ask for one 0/1 label per example as a Python list: ``[1, 0, 1, 0, 0]``. From the reply text we take
the first ``[`` and the comma-separated items up to the next ``]``; each item (spaces and quotes stripped) must
be ``0`` or ``1``. A reply without brackets is accepted only if it is nothing but 0/1 digits separated by commas
or spaces (``1`` or ``1, 0``). A list with a different number of items than asked makes every answer None (the
positions cannot be trusted); a single item that is not 0/1 is None. For each answer we find the token that
holds its digit and read that position's ``top_logprobs``: candidates equal to the chosen token with the digit
replaced by ``0`` / ``1`` (or whose stripped text is ``0`` / ``1``) add their probability to P(0) / P(1), and the
probability is ``P(1) / (P(0) + P(1))``. A digit absent from the top-k list counts as probability 0 (it was less
likely than every listed token), so the answer can be exactly 0.0 or 1.0. No logprobs at all -> None.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from rsae_utils.errors import ParameterError

Messages = list[dict[str, str]]


@runtime_checkable
class LLMBackend(Protocol):
    """What the explainer and scorers call. ``name`` is recorded in every table and figure."""

    name: str

    def generate(self, messages: Messages, max_tokens: int = 100) -> str: ...

    def answer_probabilities(self, messages: Messages, n_answers: int) -> list[float | None]: ...


def answer_list_regex(n_answers: int) -> str:
    """The regex of a well-formed answer list, e.g. ``\\[[01](, [01]){4}\\]`` for 5 answers.

    Sent as a decoding constraint to servers that support one (see ``OpenAIBackend(structured=...)``).
    """
    if n_answers < 1:
        raise ParameterError(f"parameter 'n_answers' must be an integer >= 1; got {n_answers!r}")
    return r"\[[01]" + (f"(, [01]){{{n_answers - 1}}}" if n_answers > 1 else "") + r"\]"


_REGEX_N = re.compile(r"^\\\[\[01\](?:\(, \[01\]\)\{(\d+)\})?\\\]$")


def n_answers_from_regex(regex: str) -> int | None:
    """Inverse of :func:`answer_list_regex` (None for any other regex); used by the local server."""
    m = _REGEX_N.match(regex)
    if not m:
        return None
    return int(m.group(1)) + 1 if m.group(1) else 1


_BARE = re.compile(r"^[\s,]*[01](?:[\s,]+[01])*[\s,]*$")


def answer_slots(text: str, n_answers: int) -> list[int | None]:
    """Character offset of each answer's digit in ``text`` (None where missing or not 0/1); see module doc."""
    start = text.find("[")
    if start < 0:
        if not _BARE.match(text):
            return [None] * n_answers
        slots: list[int | None] = [m.start() for m in re.finditer(r"[01]", text)]
    else:
        end = text.find("]", start + 1)
        body_end = end if end >= 0 else len(text)
        if end < 0:
            # An unclosed list (cut by max_tokens) is incomplete: its count cannot be trusted.
            return [None] * n_answers
        slots = []
        pos = start + 1
        for item in text[start + 1 : body_end].split(","):
            stripped = item.strip().strip("'\"").strip()
            slots.append(pos + item.index(stripped) if stripped in ("0", "1") else None)
            pos += len(item) + 1
    if len(slots) != n_answers:
        return [None] * n_answers
    return slots


def parse_answer_list(text: str, n_answers: int) -> list[int | None]:
    """The 0/1 labels of a reply (None where missing or unparsable); see the module doc for the format."""
    return [None if s is None else int(text[s]) for s in answer_slots(text, n_answers)]


def _digit_label(candidate: str, chosen: str, k: int) -> int | None:
    for d in (0, 1):
        if candidate == chosen[:k] + str(d) + chosen[k + 1 :] or candidate.strip() == str(d):
            return d
    return None


def probabilities_from_logprobs(content: Sequence[Mapping[str, Any]] | None, n_answers: int) -> list[float | None]:
    """P(1) / (P(0) + P(1)) per answer from OpenAI ``choices[0].logprobs.content`` entries.

    Each entry is ``{"token": str, "logprob": float, "top_logprobs": [{"token": str, "logprob": float}, ...]}``.
    Returns exactly ``n_answers`` values; None where the answer is missing, unparsable or has no logprobs.
    """
    if not content:
        return [None] * n_answers
    texts = [str(e.get("token", "")) for e in content]
    starts, pos = [], 0
    for t in texts:
        starts.append(pos)
        pos += len(t)
    text = "".join(texts)
    out: list[float | None] = []
    tok_i = 0
    for slot in answer_slots(text, n_answers):
        if slot is None:
            out.append(None)
            continue
        while tok_i + 1 < len(starts) and starts[tok_i + 1] <= slot:
            tok_i += 1
        entry, chosen = content[tok_i], texts[tok_i]
        k = slot - starts[tok_i]
        # The chosen token itself, then its alternatives; one probability per distinct token string.
        cands: dict[str, float] = {}
        for alt in [entry, *(entry.get("top_logprobs") or [])]:
            tok, lp = alt.get("token"), alt.get("logprob")
            if isinstance(tok, str) and isinstance(lp, (int, float)) and math.isfinite(lp) and tok not in cands:
                cands[tok] = math.exp(lp)
        mass = [0.0, 0.0]
        for tok, p in cands.items():
            d = _digit_label(tok, chosen, k)
            if d is not None:
                mass[d] += p
        total = mass[0] + mass[1]
        out.append(mass[1] / total if total > 0 else None)
    return out


def probabilities_from_response(response: Mapping[str, Any], n_answers: int) -> list[float | None]:
    """:func:`probabilities_from_logprobs` on a whole chat-completion response (None for a malformed one)."""
    try:
        choice = response["choices"][0]
        content = (choice.get("logprobs") or {}).get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return [None] * n_answers
    return probabilities_from_logprobs(content, n_answers)


def response_text(response: Mapping[str, Any]) -> str:
    """The assistant text of a chat-completion response ('' if absent)."""
    try:
        return response["choices"][0]["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""


def bad_param(name: str, allowed: str, value: Any) -> None:
    raise ParameterError(f"parameter {name!r} must be {allowed}; got {value!r}")


def check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        bad_param("messages", "a non-empty list of {'role': str, 'content': str} dicts", messages)
    for m in messages:
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            bad_param("messages", "a non-empty list of {'role': str, 'content': str} dicts", m)


def check_n_answers(n_answers: Any) -> None:
    if isinstance(n_answers, bool) or not isinstance(n_answers, int) or n_answers < 1:
        bad_param("n_answers", "an integer >= 1", n_answers)


def n_answers_list(many: list, n_answers: int | Sequence[int]) -> list[int]:
    ns = [n_answers] * len(many) if isinstance(n_answers, int) else list(n_answers)
    if len(ns) != len(many):
        bad_param("n_answers", f"an int or one int per message list ({len(many)})", n_answers)
    for n in ns:
        check_n_answers(n)
    return ns


# Which servers give the token log-probabilities the scorers read (said whenever a server gives none).
LOGPROB_SERVERS = (
    "vLLM and the llama.cpp server return them for logprobs=true; Ollama's OpenAI endpoint returns them in recent "
    "versions; `transformers serve` does not (python -m rsae_utils.autointerp.llm.serve is a local server that does)"
)


def completion_problem(data: Any, want_logprobs: bool) -> str | None:
    """Why ``data`` is not a usable chat completion (None when it is one): no choices, no message, or no
    ``logprobs.content`` where they were asked for."""
    if not isinstance(data, dict):
        return "the body is not a JSON object"
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "it has no 'choices'"
    message = choices[0].get("message")
    if not isinstance(message, dict) or not isinstance(message.get("content") or "", str):
        return "its first choice has no 'message' with text 'content'"
    if want_logprobs:
        lp = choices[0].get("logprobs")
        if not isinstance(lp, dict) or not isinstance(lp.get("content"), list) or not lp["content"]:
            return "it has no token logprobs ('choices[0].logprobs.content' is empty or missing)"
    return None
