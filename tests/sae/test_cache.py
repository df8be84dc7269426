"""Activation cache: round trip, resume after interruption, damaged shards, batches."""

from __future__ import annotations

import os

import pytest
import torch
from _tiny_model import tiny_model, tiny_windows

from rsae_utils.errors import CacheError
from rsae_utils.sae.cache import hook_name, is_complete, open_cache
from rsae_utils.sae.harvest import harvest

META = {"model": "tiny-test", "variant": "trained", "seed": 7, "corpus_sha256": "abc"}
LAYERS = [0, 2]


def _harvest(path, model=None, **kw):
    return harvest(model or tiny_model(), tiny_windows(), LAYERS, path, META, batch_size=4, shard_windows=8, **kw)


def test_round_trip_equals_run_with_cache(tmp_path):
    model = tiny_model()
    windows = tiny_windows()
    _harvest(tmp_path / "c", model)
    cache = open_cache(tmp_path / "c", check_hash=True)
    for split, toks in windows.items():
        assert torch.equal(cache.tokens(split), toks)
        _, ref = model.run_with_cache(toks, names_filter=[hook_name(x) for x in LAYERS])
        for layer in LAYERS:
            acts = cache.acts(layer, split)
            assert acts.shape == (toks.shape[0], toks.shape[1], 32)
            torch.testing.assert_close(acts, ref[hook_name(layer)], rtol=0, atol=1e-6)
    m = cache.manifest
    assert m["complete"] and m["layers"] == LAYERS and m["stop_at_layer"] == 3
    assert m["n_tokens"] == {"train": 20 * 16, "test": 6 * 16}
    assert m["variant"] == "trained" and m["seed"] == 7 and m["corpus_sha256"] == "abc" and m["dtype"] == "float32"
    assert all(len(s["sha256"]) == 64 and s["bytes"] > 0 for s in m["shards"])
    assert "provenance" in m


def test_forward_stops_after_deepest_layer(tmp_path):
    model = tiny_model()
    ran = []
    for i, block in enumerate(model.blocks):
        block.register_forward_hook(lambda *_, i=i: ran.append(i))
    _harvest(tmp_path / "c", model)
    assert set(ran) == {0, 1, 2}


def test_resume_redoes_only_missing_shards(tmp_path):
    model = tiny_model()
    path = tmp_path / "c"
    partial = _harvest(path, model, max_shards=2)
    assert not partial.manifest["complete"] and not is_complete(path)
    first = {s["file"]: (path / s["file"]).stat().st_mtime_ns for s in partial.manifest["shards"]}
    assert len(first) == 2
    full = _harvest(path, model)
    assert full.manifest["complete"] and len(full.manifest["shards"]) == 4  # 3 train shards + 1 test shard
    for name, mtime in first.items():
        assert (path / name).stat().st_mtime_ns == mtime  # finished shards were not rewritten
    # identical to an uninterrupted harvest
    _harvest(tmp_path / "ref", model)
    ref = open_cache(tmp_path / "ref")
    assert [s["sha256"] for s in full.manifest["shards"]] == [s["sha256"] for s in ref.manifest["shards"]]


def test_corrupted_shard_detected_and_redone(tmp_path):
    path = tmp_path / "c"
    cache = _harvest(path)
    good = {s["file"]: s["sha256"] for s in cache.manifest["shards"]}
    victim = path / cache.manifest["shards"][1]["file"]
    data = bytearray(victim.read_bytes())
    data[-5] ^= 0xFF  # same size, different content
    victim.write_bytes(bytes(data))
    assert cache.verify(check_hash=True) == [victim.name]
    try:
        open_cache(path, check_hash=True)
        raise AssertionError("damaged shard not detected")
    except CacheError as err:
        assert victim.name in str(err)
    # a truncated file is caught by the size check alone
    other = path / cache.manifest["shards"][0]["file"]
    other.write_bytes(other.read_bytes()[:-10])
    try:
        open_cache(path)  # sizes only
        raise AssertionError("truncated shard not detected")
    except CacheError as err:
        assert other.name in str(err)
    assert not is_complete(path)
    mtimes = {f: (path / f).stat().st_mtime_ns for f in good}
    redone = _harvest(path)
    assert {s["file"]: s["sha256"] for s in redone.manifest["shards"]} == good
    changed = {f for f in good if (path / f).stat().st_mtime_ns != mtimes[f]}
    assert changed == {victim.name, other.name}


def test_control_noise_resumes_identically(tmp_path):
    """A model with its own noise generator (like the control variant) gives the same cache when resumed."""

    class Noise:
        def __init__(self):
            self.generator = torch.Generator().manual_seed(0)

        def __call__(self, value, hook=None):
            return torch.randn(value.shape, generator=self.generator)

    def noisy():
        m = tiny_model()
        m.rsae_embedding_noise = Noise()
        m.add_perma_hook("hook_embed", m.rsae_embedding_noise)
        return m

    a = _harvest(tmp_path / "a", noisy())
    _harvest(tmp_path / "b", noisy(), max_shards=1)
    b = _harvest(tmp_path / "b", noisy())
    assert [s["sha256"] for s in a.manifest["shards"]] == [s["sha256"] for s in b.manifest["shards"]]
    clean = _harvest(tmp_path / "clean", tiny_model())
    assert not torch.allclose(a.acts(0, "test"), clean.acts(0, "test"))


def test_batches_shuffled_and_deterministic(tmp_path):
    cache = _harvest(tmp_path / "c")
    rows = cache.acts(2, "train").reshape(-1, 32)

    def take(seed, n, **kw):
        it = cache.iter_batches(2, 64, seed=seed, **kw)
        return torch.cat([next(it) for _ in range(n)])

    one_epoch = take(0, 5)  # 320 rows = one epoch
    assert one_epoch.shape == (320, 32)
    # a permutation of the split's rows, not their order
    assert torch.equal(one_epoch[one_epoch[:, 0].argsort()], rows[rows[:, 0].argsort()])
    assert not torch.equal(one_epoch, rows)
    assert torch.equal(take(0, 7), take(0, 7)) and not torch.equal(take(0, 7), take(1, 7))
    # streaming through a buffer smaller than the split still covers every row once per epoch
    streamed = take(3, 5, buffer_tokens=100)
    assert torch.equal(streamed[streamed[:, 0].argsort()], rows[rows[:, 0].argsort()])


def test_streamed_batches_load_one_buffer_at_a_time(tmp_path, monkeypatch):
    """A split larger than the buffer is read a buffer's worth of shards at a time, as the batches reach it: the
    first batch has read only the first buffer's shards (a 4M-token split need not sit in memory whole)."""
    cache = _harvest(tmp_path / "c")
    n_shards = sum(s["split"] == "train" for s in cache.manifest["shards"])
    assert n_shards > 2  # several buffers per epoch
    read = []
    orig = cache.shard_acts
    monkeypatch.setattr(cache, "shard_acts", lambda *a: read.append(a[2]) or orig(*a))
    it = cache.iter_batches(2, 4, seed=0, buffer_tokens=2 * 8 * cache.ctx)  # two shards of 8 windows
    next(it)
    assert len(read) == 2
    for _ in range(cache.n_tokens() // 4):  # one epoch further: every shard read, some twice by now
        next(it)
    assert set(read) == set(range(n_shards))


def test_float16_cache(tmp_path):
    cache = _harvest(tmp_path / "c", dtype="float16")
    ref = _harvest(tmp_path / "r")
    assert cache.manifest["dtype"] == "float16"
    assert cache.acts(0, "test").dtype == torch.float32
    torch.testing.assert_close(cache.acts(0, "test"), ref.acts(0, "test"), rtol=2e-3, atol=2e-3)
    assert sum(s["bytes"] for s in cache.manifest["shards"]) < 0.6 * sum(s["bytes"] for s in ref.manifest["shards"])


def test_bad_layers_rejected_before_any_forward(tmp_path):
    for layers in ([], [4], [-1]):
        try:
            harvest(tiny_model(), tiny_windows(), layers, tmp_path / "c", META)
            raise AssertionError(f"layers {layers} accepted")
        except ValueError as err:
            assert "layers" in str(err)
    assert not (tmp_path / "c" / "manifest.json").exists()


def test_batches_leave_out_excluded_tokens(tmp_path):
    cache = _harvest(tmp_path / "c")
    toks = cache.tokens("train").reshape(-1)
    rows = cache.acts(2, "train").reshape(-1, 32)
    drop = toks[:3].tolist()
    keep = ~torch.isin(toks, torch.tensor(drop))
    n_keep = int(keep.sum())
    for buffer in (1 << 20, 100):  # resident and streamed
        it = cache.iter_batches(2, n_keep, seed=0, buffer_tokens=buffer, exclude_tokens=drop)
        got = next(it)
        assert torch.equal(got[got[:, 0].argsort()], rows[keep][rows[keep][:, 0].argsort()])


@pytest.mark.parametrize("text", ["null", '{"files": 5}', '{"key": "x", "shards": 3}'])
def test_a_cache_manifest_that_is_no_manifest_is_rebuilt_with_a_warning(tmp_path, text):
    path = tmp_path / "c"
    good = {s["file"]: s["sha256"] for s in _harvest(path).manifest["shards"]}
    (path / "manifest.json").write_text(text)
    with pytest.warns(UserWarning, match="unreadable cache manifest") as seen:
        redone = _harvest(path)
    assert not any("other parameters" in str(w.message) for w in seen)
    assert {s["file"]: s["sha256"] for s in redone.manifest["shards"]} == good


def test_shards_get_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        cache = _harvest(tmp_path / "c")
    finally:
        os.umask(old)
    assert {(cache.root / s["file"]).stat().st_mode & 0o777 for s in cache.manifest["shards"]} == {0o644}
