"""Text -> fixed-length token windows: training and held-out windows, disjoint by document.

Every window starts with the document-boundary token (``boundary_token_id``), as a document does in pretraining.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.utils import logging as hf_logging

from rsae_utils.errors import ParameterError
from rsae_utils.subject.corpus import Corpus


def boundary_token_id(tokenizer: Any) -> int:
    """The token that starts every window and separates documents.

    ``<|endoftext|>`` when the vocabulary has it (SmolLM2, Pythia and GPT-2 all use it as the document boundary
    in pretraining), else the tokenizer's BOS, else its EOS.
    """
    vocab = tokenizer.get_vocab()
    if "<|endoftext|>" in vocab:
        return int(vocab["<|endoftext|>"])
    for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    raise ParameterError("the tokenizer has neither <|endoftext|>, a BOS nor an EOS token to mark document starts")


def _check_int(name: str, value: Any, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ParameterError(f"parameter {name!r} must be an integer >= {lo}; got {value!r}")


def _encode(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    old = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "sequence longer than the model maximum" does not apply: we cut windows
    try:
        return tokenizer(texts, add_special_tokens=False)["input_ids"]
    finally:
        hf_logging.set_verbosity(old)


def tokenize_windows(
    corpus: Corpus, tokenizer: Any, ctx: int, n_train: int, n_test: int, seed: int
) -> dict[str, torch.Tensor]:
    """Fixed-length token windows for training and held-out evaluation, disjoint by document.

    Documents are shuffled with ``seed``; the first ones (in that order) make the test stream until it holds
    ``n_test`` windows, the rest make the train stream. Within a stream, documents are concatenated with the
    boundary token (``boundary_token_id``) between them and cut into consecutive windows of ``ctx - 1`` tokens,
    each prefixed with the boundary token, so every window starts as a document does in pretraining and position 0
    is the same token everywhere (its residual stream is an outlier; consumers may want to skip it). The test
    split does not depend on ``n_train``; either count may be 0 (train and held-out windows from two corpora, the
    paper's disjoint slices of one data set, are two calls). Returns ``{"train": (n_train, ctx), "test": (n_test,
    ctx)}`` int64.
    """
    _check_int("ctx", ctx, 2)
    _check_int("n_train", n_train, 0)
    _check_int("n_test", n_test, 0)
    if n_train + n_test < 1:
        raise ParameterError("parameters 'n_train' and 'n_test': at least one window is needed; got 0 and 0")
    _check_int("seed", seed, 0)
    if not corpus.texts:
        raise ParameterError("parameter 'corpus' is empty: no documents to tokenize")
    bos = boundary_token_id(tokenizer)
    body = ctx - 1
    order = torch.randperm(len(corpus.texts), generator=torch.Generator().manual_seed(seed)).tolist()
    needs = {"test": n_test * body, "train": n_train * body}
    streams: dict[str, list[int]] = {"test": [], "train": []}
    split = "test" if needs["test"] > 0 else "train"
    total_tokens = 0
    chunk = 64
    for start in range(0, len(order), chunk):
        if split == "done":
            break
        idx = order[start : start + chunk]
        for ids in _encode(tokenizer, [corpus.texts[i] for i in idx]):
            total_tokens += len(ids) + 1
            if split == "done":
                continue
            stream = streams[split]
            if stream:
                stream.append(bos)
            stream.extend(ids)
            if len(stream) >= needs[split]:
                split = "train" if split == "test" and needs["train"] > 0 else "done"
    if split != "done":
        have = {k: len(v) // body for k, v in streams.items()}
        raise ParameterError(
            f"not enough tokens: ctx={ctx}, n_train={n_train}, n_test={n_test} need about "
            f"{(n_train + n_test) * body:,} tokens (train and test split by document), but corpus "
            f"{corpus.source!r} ({corpus.n_docs} documents, {corpus.n_chars:,} chars) has {total_tokens:,} tokens "
            f"(with separators), enough for {have['test']} test and {have['train']} train windows. "
            "Lower n_train / n_test / ctx, or use a larger corpus."
        )
    out = {}
    for name, n in (("train", n_train), ("test", n_test)):
        toks = torch.tensor(streams[name][: n * body], dtype=torch.long).view(n, body)
        out[name] = torch.cat([torch.full((n, 1), bos, dtype=torch.long), toks], dim=1)
    return out
