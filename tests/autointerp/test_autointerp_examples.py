"""Example sampling: windows, quantile bins, counts, negatives, and the chunk-wise sparse encode."""

import numpy as np
import pytest
import torch

from rsae_utils.autointerp.examples import (
    LatentRecord,
    SparseActs,
    choose_latents,
    encode_sparse,
    latent_record,
    quantile_bins,
    sample_latents,
)
from rsae_utils.autointerp.synthetic import synthetic_sparse_acts, toy_cache_acts

COUNTS = dict(n_explain=8, explain_pool=20, n_bins=5, per_bin=3, n_negatives=20)


@pytest.fixture(scope="module")
def sp():
    return synthetic_sparse_acts(n_seq=64, ctx=128, vocab=100, seed=0)


def test_window_geometry(sp):
    assert sp.n_windows == 64 * 4
    rec = latent_record(sp, 0, **COUNTS)
    for w in rec.explain + rec.positives + rec.negatives:
        assert len(w.tokens) == len(w.acts) == 32
        assert w.start % 32 == 0
        assert w.tokens == sp.tokens[w.seq, w.start : w.start + 32].tolist()
        assert w.max_act == pytest.approx(max(w.acts))
    # latent 0 fires exactly on token 0
    for w in rec.explain + rec.positives:
        assert all((a > 0) == (t == 0) for t, a in zip(w.tokens, w.acts))


def test_record_invariants(sp):
    rec = latent_record(sp, 5, seed=3, **COUNTS)
    win, mx = sp.window_maxima(5)
    active = set(win.tolist())
    assert rec.n_active_windows == len(active)
    ex = [w.window for w in rec.explain]
    pos = [w.window for w in rec.positives]
    neg = [w.window for w in rec.negatives]
    assert len(ex) == 8 and len(neg) == 20 and len(pos) == 5 * 3
    # no window is used twice; negatives never overlap activating windows; positives all activate
    assert len(set(ex + pos + neg)) == len(ex) + len(pos) + len(neg)
    assert not set(neg) & active
    assert set(pos) <= active and set(ex) <= active
    assert all(w.max_act == 0 and w.label == 0 for w in rec.negatives)
    # explainer examples come from the top `explain_pool` windows
    top = set(win[np.argsort(-mx, kind="stable")[:20]].tolist())
    assert set(ex) <= top
    # bins: per_bin each, and bin b's strongest is no stronger than bin b+1's weakest
    bins = [w.bin for w in rec.positives]
    assert sorted(set(bins)) == list(range(5)) and all(bins.count(b) == 3 for b in range(5))
    by_bin = {b: [w.max_act for w in rec.positives if w.bin == b] for b in range(5)}
    for b in range(4):
        assert max(by_bin[b]) <= min(by_bin[b + 1])


def test_sampling_is_seeded_and_eligible(sp):
    counts = sp.active_window_counts()
    a = choose_latents(sp, 3, min_examples=40, seed=1)
    b = choose_latents(sp, 3, min_examples=40, seed=1)
    assert a.tolist() == b.tolist() and len(a) == 3
    assert (counts[a] >= 40).all()
    # the positional latent fires in 64 windows only: excluded at min_examples=65
    assert 8 not in choose_latents(sp, 100, min_examples=65, seed=0)
    recs = sample_latents(sp, 2, min_examples=40, seed=1, **COUNTS)
    again = sample_latents(sp, 2, min_examples=40, seed=1, **COUNTS)
    assert [r.to_dict() for r in recs] == [r.to_dict() for r in again]
    assert LatentRecord.from_dict(recs[0].to_dict()).to_dict() == recs[0].to_dict()


def test_active_window_counts_equal_distinct_windows_per_latent(sp):
    """The one-pass count over the (latent, token)-sorted entries equals counting distinct windows directly, for
    a synthetic corpus and for one whose latents fire in neighbouring and in empty windows."""
    rng = np.random.default_rng(3)
    tokens = np.zeros((6, 16), dtype=np.int64)
    flat = rng.integers(0, tokens.size, 300)
    latent = rng.integers(0, 7, 300)  # latent 6 may stay empty; entries repeat windows and tokens
    other = SparseActs(
        tokens=tokens, window_len=4, n_latents=8, flat=flat, latent=latent, value=np.ones(300, dtype=np.float32)
    )
    for acts in (sp, other):
        want = [len(set(acts.window_of(acts.flat[acts.latent == j]).tolist())) for j in range(acts.n_latents)]
        assert acts.active_window_counts().tolist() == want
    assert other.active_window_counts()[7] == 0 and other.active_window_counts().sum() > 7
    empty = SparseActs(
        tokens=tokens,
        window_len=4,
        n_latents=3,
        flat=np.zeros(0, dtype=np.int64),
        latent=np.zeros(0, dtype=np.int64),
        value=np.zeros(0, dtype=np.float32),
    )
    assert empty.active_window_counts().tolist() == [0, 0, 0]


def test_a_latent_active_in_every_window_is_not_sampled():
    """It has no negatives: its detection and fuzzing AUROCs would be undefined."""
    tokens = np.zeros((4, 8), dtype=np.int64)
    flat = np.r_[np.arange(32), [0, 9, 18]]  # latent 0 fires on every token; latent 1 in windows 0, 2 and 4
    latent = np.r_[np.zeros(32, dtype=np.int64), np.ones(3, dtype=np.int64)]
    sp = SparseActs(
        tokens=tokens, window_len=4, n_latents=2, flat=flat, latent=latent, value=np.ones(35, dtype=np.float32)
    )
    assert sp.active_window_counts().tolist() == [8, 3] and sp.n_windows == 8
    assert choose_latents(sp, 2, min_examples=1, seed=0).tolist() == [1]
    rec = sample_latents(sp, 2, min_examples=1, seed=0, **COUNTS)[0]
    assert rec.latent == 1 and len(rec.negatives) == 5


def test_quantile_bins_cover():
    bins = quantile_bins(23, 10)
    assert len(bins) == 10 and np.concatenate(bins).tolist() == list(range(23))
    assert max(map(len, bins)) - min(map(len, bins)) <= 1


def test_small_latent_takes_what_exists():
    sp = synthetic_sparse_acts(n_seq=8, ctx=64, seed=1)
    rec = latent_record(sp, 8, n_explain=40, explain_pool=100, n_bins=10, per_bin=10, n_negatives=1000)
    total = sp.window_maxima(8)[0].size
    assert len(rec.explain) + len(rec.positives) == total
    assert len(rec.negatives) == sp.n_windows - total


def test_encode_sparse_matches_dense_and_chunking():
    tokens, acts, sae = toy_cache_acts(n_seq=6, ctx=70, seed=0)  # 70 = 2 windows + 6 dropped positions
    a = encode_sparse(sae, acts, tokens, window_len=32, chunk_tokens=64)
    b = encode_sparse(sae, acts, tokens, window_len=32, chunk_tokens=10_000)
    assert np.array_equal(a.flat, b.flat) and np.allclose(a.value, b.value)
    dense = sae.encode(acts[:, :64]).detach()
    nz = dense > 0
    assert a.value.size == int(nz.sum())
    assert a.n_windows == 12 and int((a.flat % 70).max()) < 64
    lat = 0
    flat, val = a.entries(lat)
    seq, pos = np.divmod(flat, 70)
    assert np.allclose(val, dense[seq, pos, lat].numpy())
    # token latent 0 fires (almost only) on token 0
    assert (tokens.numpy()[seq, pos] == 0).mean() > 0.9
    assert isinstance(a.tokens, np.ndarray) and a.tokens.shape == (6, 70)
    assert torch.is_tensor(acts)


def test_encode_sparse_topk_path_equals_the_dense_encode(monkeypatch):
    """A plain TopK SAE is encoded without a dense latent tensor: same (position, latent, value) triples as
    sae-lens's dense encode, in the same order."""
    import rsae_utils.autointerp.examples as E
    from rsae_utils.sae.topk import TopKResult, init_params, to_sae_lens

    p = init_params(16, 64, seed=2)
    p["b_enc"] = 0.05 * torch.randn(64, generator=torch.Generator().manual_seed(3))
    sae = to_sae_lens(TopKResult(**p, k=4))
    acts = torch.randn(5, 64, 16, generator=torch.Generator().manual_seed(4))
    tokens = torch.randint(0, 50, (5, 64), generator=torch.Generator().manual_seed(5))
    fast = E.encode_sparse(sae, acts, tokens, window_len=32, chunk_tokens=100)
    monkeypatch.setattr(E, "plain_topk", lambda sae: None)
    dense = E.encode_sparse(sae, acts, tokens, window_len=32, chunk_tokens=100)
    assert fast.n_latents == dense.n_latents == 64
    np.testing.assert_array_equal(fast.flat, dense.flat)
    np.testing.assert_array_equal(fast.latent, dense.latent)
    np.testing.assert_allclose(fast.value, dense.value, rtol=1e-5, atol=1e-6)


def test_record_dict_equals_asdict(sp):
    """LatentRecord.to_dict is a shallow copy (fast); it must hold exactly what asdict gives."""
    from dataclasses import asdict

    recs = sample_latents(sp, 3, min_examples=40, seed=1, **COUNTS)
    assert len(recs) == 3 and all(r.to_dict() == asdict(r) for r in recs)
