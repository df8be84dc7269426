"""The latent browser shows a character split over several tokens (byte-level BPE) as the character, not as
replacement marks."""

from __future__ import annotations

from rsae_utils.plots.browser import REPLACEMENT, join_split_characters


def _byte_decoder():
    """Token = one UTF-8 byte, as a byte-level tokenizer splits a rare accented letter."""

    def run(ids):
        return bytes(ids).decode("utf-8", errors="replace")

    def each(ids):
        return [run([i]) for i in ids]

    return each, run


def test_split_multibyte_characters_are_joined_for_display():
    each, run = _byte_decoder()
    ids = list("Karel Čapek, Dvořák".encode())
    acts = [0.0] * len(ids)
    acts[6] = 2.0  # first byte of Č
    acts[7] = 3.0
    toks, vals = join_split_characters(ids, each(ids), acts, run)
    assert "".join(toks) == "Karel Čapek, Dvořák" and not any(REPLACEMENT in t for t in toks)
    assert "Č" in toks and "ř" in toks and "á" in toks
    assert vals[toks.index("Č")] == 3.0 and len(vals) == len(toks) == len("Karel Čapek, Dvořák")


def test_nothing_to_join_or_no_run_decoder_leaves_tokens_alone():
    each, run = _byte_decoder()
    ids = list(b"plain")
    assert join_split_characters(ids, each(ids), [1, 0, 0, 0, 0], run) == (list("plain"), [1.0, 0, 0, 0, 0])
    ids = list("Č".encode())
    assert join_split_characters(ids, each(ids), [0, 1], None)[0] == [REPLACEMENT, REPLACEMENT]
    # a real U+FFFD (or a truncated character at the window's end) stays as it is
    ids = list(b"ab") + [0xC4]
    toks, _ = join_split_characters(ids, each(ids), [0, 0, 0], run)
    assert toks == ["a", "b", REPLACEMENT]


def test_token_decoder_decodes_runs_together():
    from rsae_utils.autointerp.prompts import TokenDecoder

    dec = TokenDecoder(lambda ids: bytes(ids).decode("utf-8", errors="replace"))
    ids = list("Č".encode())
    assert dec(ids) == [REPLACEMENT, REPLACEMENT] and dec.text(ids) == "Č"
