"""Streamed principal directions equal the in-memory ones; a cache reads only the shards a window prefix needs."""

from __future__ import annotations

import pytest
import torch
from _tiny_model import tiny_model, tiny_windows

from rsae_utils.sae.cache import token_mask
from rsae_utils.sae.directions import split_directions
from rsae_utils.sae.harvest import harvest
from rsae_utils.sae.metrics import top_directions, training_directions

META = {"model": "tiny-test", "variant": "trained", "seed": 0, "corpus_sha256": "abc"}


@pytest.fixture(scope="module")
def sharded_cache(tmp_path_factory):
    windows = tiny_windows(n_train=40, n_test=8, ctx=16)
    return harvest(tiny_model(), windows, [1], tmp_path_factory.mktemp("c"), META, batch_size=8, shard_windows=8)


def _mask(tokens: torch.Tensor) -> torch.Tensor:
    return token_mask(tokens, [0])


def test_streamed_directions_match_in_memory(sharded_cache):
    cache = sharded_cache
    assert sum(s["split"] == "train" for s in cache.manifest["shards"]) == 5  # the streaming path has shards to sum
    ref = training_directions(cache, 1, _mask, 3)
    got = split_directions(cache, 1, _mask, 3, max_bytes=0)
    # same directions up to sign, to float32 rounding of the (d, d) product
    cos = (got * ref).sum(1).abs()
    assert torch.allclose(cos, torch.ones(3), atol=1e-5), cos
    # under the size limit the in-memory function runs unchanged (bit-equal: the default's numbers do not move)
    assert torch.equal(split_directions(cache, 1, _mask, 3), ref)
    # and both are the principal directions of the masked rows (rows with token 0 left out)
    acts, tokens = cache.acts(1, "train"), cache.tokens("train")
    assert torch.equal(ref, top_directions(acts[_mask(tokens)], 3))


def test_acts_of_a_window_prefix(sharded_cache, monkeypatch):
    cache = sharded_cache
    full = cache.acts(1, "train")
    read = []
    orig = cache.shard_acts
    monkeypatch.setattr(cache, "shard_acts", lambda *a: read.append(a[2]) or orig(*a))
    part = cache.acts(1, "train", n_windows=10)
    assert torch.equal(part, full[:10]) and read == [0, 1]  # two of five shards read
