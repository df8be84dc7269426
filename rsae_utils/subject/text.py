"""Normalising and hashing documents: every corpus source goes through the same two functions."""

from __future__ import annotations

import hashlib
import re
import unicodedata


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def corpus_sha256(texts: list[str]) -> str:
    """sha256 over the documents in order, each UTF-8 encoded and followed by a 0x1e record separator."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x1e")
    return h.hexdigest()


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# The column a document's text is in: ``text`` (most data sets, the togethercomputer RedPajama sample) or
# ``raw_content`` (RedPajama v2 and EleutherAI's rpj-v2-sample, the paper's text), in that order.
TEXT_FIELDS = ("text", "raw_content")


def row_text(row: object) -> str | None:
    """The text of one data-set row (a dict): its first string field among :data:`TEXT_FIELDS`, else None."""
    if not isinstance(row, dict):
        return None
    for name in TEXT_FIELDS:
        if isinstance(row.get(name), str):
            return row[name]
    return None
