"""Token-identity scorers (intruder, hard negatives, active-token fuzzing, single-token explainer): known answers."""

import math

import numpy as np
import pytest
import torch
from autointerp_helpers import decode

from rsae_utils.autointerp import token_scorers as ts
from rsae_utils.autointerp.baseline import score_baseline
from rsae_utils.autointerp.examples import SparseActs, latent_record
from rsae_utils.autointerp.stats import auroc
from rsae_utils.autointerp.synthetic import synthetic_sparse_acts

COUNTS = dict(n_explain=10, explain_pool=20, n_bins=5, per_bin=4, n_negatives=40)


@pytest.fixture(scope="module")
def token7():
    """Latents 0..7 fire exactly on token ids 0..7 (vocab 100); latents 8.. fire at random."""
    sp = synthetic_sparse_acts(n_seq=64, ctx=128, n_token_latents=8, n_random_latents=3, seed=0)
    recs = {lat: latent_record(sp, lat, seed=0, **COUNTS) for lat in range(11)}
    return sp, recs


def test_single_token_explanation_of_a_token_latent(token7):
    _, recs = token7
    ex = ts.single_token_explanation(recs[7])
    assert ex.ids == (7,) and ex.mass_share == pytest.approx(1.0) and ex.text == "fires on token 7"
    assert ts.single_token_explanation(recs[7], decode=decode).text == "fires on ' t7'"
    for scorer in ("detection", "fuzzing"):
        rows = ts.score_single_token(recs[7], scorer, meta={"variant": "v"})
        assert {r["backend"] for r in rows} == {ts.SINGLE_TOKEN_NAME} and rows[0]["variant"] == "v"
        assert auroc([r["label"] for r in rows], [r["probability"] for r in rows]) == 1.0
        # same windows and order as the token baseline
        base = score_baseline(recs[7], scorer)
        assert [r["window"] for r in rows] == [r["window"] for r in base]
    # a random latent's single-token explanation holds little of its mass and scores near chance
    rnd = ts.single_token_explanation(recs[9], n=1)
    assert rnd.mass_share < 0.2
    rows = ts.score_single_token(recs[9], "detection")
    assert auroc([r["label"] for r in rows], [r["probability"] for r in rows]) < 0.7


def test_intruder_token_latent_found_every_time(token7):
    sp, recs = token7
    others = [recs[i] for i in range(7)]
    trials = ts.intruder_trials(recs[7], others, n_trials=12, n_real=4, exclude=sp.window_maxima(7)[0], seed=3)
    assert len(trials) == 12
    for tr in trials:
        assert len(tr.windows) == 5 and tr.windows[tr.intruder].kind == ts.INTRUDER
        assert tr.source_latent in range(7) and 7 not in tr.windows[tr.intruder].tokens
    rows = ts.score_intruder(recs[7], trials, meta={"layer": 0})
    assert len(rows) == 60 and sum(r["label"] == 0 for r in rows) == 12
    summary = ts.intruder_summary(rows)
    assert summary == {"accuracy": 1.0, "auroc": 1.0, "n_trials": 12}
    # deterministic given the seed
    again = ts.intruder_trials(recs[7], others, n_trials=12, exclude=sp.window_maxima(7)[0], seed=3)
    assert [[w.window for w in t.windows] for t in again] == [[w.window for w in t.windows] for t in trials]


def test_intruder_random_latent_near_chance_and_ties_shared(token7):
    _, recs = token7
    trials = ts.intruder_trials(recs[9], [recs[8], recs[10]], n_trials=40, n_real=4, seed=0)
    acc = ts.intruder_summary(ts.score_intruder(recs[9], trials))["accuracy"]
    assert acc < 0.6  # chance is 0.2
    # tie handling: an intruder tied with one real window at the lowest score counts one half
    rows = [
        {"latent": 0, "trial": 0, "label": 1, "probability": 0.0},
        {"latent": 0, "trial": 0, "label": 1, "probability": 0.5},
        {"latent": 0, "trial": 0, "label": 0, "probability": 0.0},
    ]
    assert ts.intruder_summary(rows)["accuracy"] == 0.5
    assert ts.intruder_trials(recs[9], [recs[9]]) == []  # no other latent: no intruder


def _parity_acts(n_seq=400, ctx=64, vocab=100, seed=0):
    """Latent 0 fires on token 7 at even positions, latent 1 (its decoder neighbour) on token 7 at odd ones:
    token identity cannot tell their windows apart. Latents 2..5 fire at random."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, vocab, size=(n_seq, ctx))
    flat_tok = tokens.ravel()
    pos = np.arange(flat_tok.size) % ctx
    flats = [np.flatnonzero((flat_tok == 7) & (pos % 2 == 0)), np.flatnonzero((flat_tok == 7) & (pos % 2 == 1))]
    lats = [np.zeros(flats[0].size), np.ones(flats[1].size)]
    for lat in range(2, 6):
        hit = np.flatnonzero(rng.random(flat_tok.size) < 0.01)
        flats.append(hit)
        lats.append(np.full(hit.size, lat))
    flat = np.concatenate(flats).astype(np.int64)
    return SparseActs(
        tokens=tokens,
        window_len=32,
        n_latents=6,
        flat=flat,
        latent=np.concatenate(lats).astype(np.int64),
        value=rng.uniform(1, 2, flat.size).astype(np.float32),
    )


def _decoder(seed=0, d=64):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(6, d, generator=g)
    W[1] = 0.9 * W[0] / W[0].norm() + 0.1 * W[1] / W[1].norm()  # latent 1 nearly parallel to latent 0
    return W


def test_nearest_latents_from_decoder():
    W = _decoder()
    ids, cos = ts.nearest_latents(W, k=2, block=2)
    assert ids.shape == (6, 2) and ids[0, 0] == 1 and ids[1, 0] == 0
    assert cos[0, 0] > 0.95 and (np.diff(cos, axis=1) <= 0).all()
    assert all(i not in row for i, row in enumerate(ids))  # never itself
    one, _ = ts.nearest_latents(W.numpy(), [3, 0], k=1)
    assert one.tolist() == [[ids[3, 0]], [1]]
    dup = torch.cat([W, W[:1]])
    ids, cos = ts.nearest_latents(dup, [0], k=1)
    assert ids[0, 0] == 6 and cos[0, 0] == pytest.approx(1.0)


def test_hard_negatives_defeat_the_token_explanation():
    sp = _parity_acts()
    rec = latent_record(sp, 0, n_explain=20, explain_pool=40, n_bins=5, per_bin=10, n_negatives=60, seed=0)
    hard = ts.hard_negative_record(sp, rec, _decoder(), k=1, seed=0)
    assert len(hard.negatives) == 60 and hard.positives == rec.positives
    fires = set(sp.window_maxima(0)[0].tolist())
    for w in hard.negatives:
        assert w.window not in fires and max(w.acts) == 0 and w.label == 0
        assert 7 in w.tokens  # the neighbour fired there, on token 7
    assert ts.single_token_explanation(rec).ids == (7,)

    def det_auc(r):
        rows = score_baseline(r, "detection")
        return auroc([x["label"] for x in rows], [x["probability"] for x in rows])

    random_auc, hard_auc = det_auc(rec), det_auc(hard)
    assert random_auc > 0.85
    assert hard_auc == pytest.approx(0.5)  # every window holds token 7: the explanation cannot separate them
    # too few candidates: fewer negatives come back, never windows where the target fires
    few = ts.hard_negative_windows(sp, 0, [1], n_negatives=10_000)
    assert 60 < len(few) < 10_000 and not {w.window for w in few} & fires


def test_active_token_precision(token7):
    _, recs = token7
    rows = ts.active_token_rows(recs[7])
    n_tok = sum(len(w.tokens) for w in recs[7].scoring)
    assert len(rows) == n_tok and {r["scorer"] for r in rows} == {ts.ACTIVE_TOKEN}
    m = ts.marking_precision(rows)
    assert m["precision"] == 1.0 and m["recall"] == 1.0 and m["auroc"] == 1.0
    assert m["n_marked"] == m["n_active"] > 0
    # Only the top token of a two-token latent: every mark is right (precision 1), about half the actives missed.
    sp = synthetic_sparse_acts(n_seq=64, ctx=128, n_token_latents=2, n_random_latents=0, seed=1)
    two = SparseActs(
        tokens=sp.tokens,
        window_len=32,
        n_latents=1,
        flat=sp.flat[sp.latent < 2],
        latent=np.zeros(int((sp.latent < 2).sum()), dtype=np.int64),
        value=sp.value[sp.latent < 2],
    )
    rec = latent_record(two, 0, seed=0, **COUNTS)
    m1 = ts.marking_precision(ts.active_token_rows(rec, top_k=1))
    assert m1["precision"] == 1.0 and 0.3 < m1["recall"] < 0.7
    # A random latent: marks mostly miss.
    mr = ts.marking_precision(ts.active_token_rows(recs[9]))
    assert mr["precision"] < 0.2
    assert math.isnan(ts.marking_precision([{"label": 1, "probability": 0.0}])["precision"])
