"""SAE latent matching (sae.matching): known answers, dense == sparse, analyses and input checks."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rsae_utils.sae.matching import (
    Directions,
    assign,
    cosine_matrices,
    directions_from_sae,
    top_m_candidates,
    unit_directions,
)
from rsae_utils.studies.seeds.stability import (
    alignment,
    alignment_by_bins,
    match_saes,
    match_to_reference,
    n_seeds_sharing,
    shared_fraction_curve,
)

D_IN, D_SAE = 64, 256


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _weights(d_in: int, d_sae: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(W_enc (d_in, d_sae), W_dec (d_sae, d_in)) of a random SAE, encoder independent of decoder."""
    g = _gen(seed)
    return torch.randn(d_in, d_sae, generator=g), torch.randn(d_sae, d_in, generator=g)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True)


def _dirs(enc: torch.Tensor, dec: torch.Tensor) -> Directions:
    """Directions straight from (n, d) row matrices (enc rows are W_enc columns)."""
    return unit_directions(enc.T, dec)


def _is_injective(partner: np.ndarray) -> bool:
    p = partner[partner >= 0]
    return len(np.unique(p)) == len(p)


@pytest.fixture(scope="module")
def sae_a() -> Directions:
    return unit_directions(*_weights(D_IN, D_SAE, 0))


# --------------------------------------------------------------------------------------------------------------
# Known answers
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["dense", "sparse"])
def test_permuted_copy_shares_everything_and_recovers_the_permutation(method):
    w_enc, w_dec = _weights(D_IN, D_SAE, 0)
    perm = torch.randperm(D_SAE, generator=_gen(1))
    a = unit_directions(w_enc, w_dec)
    b = unit_directions(w_enc[:, perm] * 2.5, w_dec[perm] * 0.3)  # scale must not matter
    r = match_saes(a, b, method=method)
    inverse = np.argsort(perm.numpy())  # b latent j is a latent perm[j]
    np.testing.assert_array_equal(r.dec_partner, inverse)
    np.testing.assert_array_equal(r.enc_partner, inverse)
    np.testing.assert_allclose(r.dec_cos, 1.0, atol=1e-5)
    np.testing.assert_allclose(r.enc_cos, 1.0, atol=1e-5)
    s = r.summary()
    assert s.frac_shared == 1.0 and s.n_same_partner == D_SAE and s.n_maxcos_shared == D_SAE
    assert s.method == method and s.n_fallback_edges == 0 and s.certified


@pytest.mark.parametrize("method", ["dense", "sparse"])
def test_independent_random_saes_share_nothing(sae_a, method):
    b = unit_directions(*_weights(D_IN, D_SAE, 7))
    s = match_saes(sae_a, b, method=method).summary()
    # Random pairs in 64 dims: the best of 256 cosines is ~0.45, far below 0.7.
    assert s.frac_shared <= 0.01
    assert s.frac_maxcos_shared <= 0.01


@pytest.mark.parametrize("method", ["dense", "sparse"])
def test_half_replaced_copy_shares_half(sae_a, method):
    g = _gen(3)
    keep = torch.randperm(D_SAE, generator=g)[: D_SAE // 2]
    enc, dec = sae_a.enc.clone(), sae_a.dec.clone()
    fresh_enc, fresh_dec = _unit(torch.randn(D_SAE, D_IN, generator=g)), _unit(torch.randn(D_SAE, D_IN, generator=g))
    replaced = torch.ones(D_SAE, dtype=torch.bool)
    replaced[keep] = False
    enc[replaced], dec[replaced] = fresh_enc[replaced], fresh_dec[replaced]
    # Kept latents get a little noise (cosine ~0.95 with the original), replaced ones are unrelated.
    enc = enc + 0.04 * torch.randn(D_SAE, D_IN, generator=g)
    dec = dec + 0.04 * torch.randn(D_SAE, D_IN, generator=g)
    r = match_saes(sae_a, _dirs(enc, dec), method=method)
    s = r.summary()
    assert abs(s.frac_shared - 0.5) <= 0.02, s  # stated tolerance: 2 points
    # The shared ones are (nearly) exactly the kept ones, matched to themselves.
    assert (r.shared[keep.numpy()]).mean() >= 0.98
    np.testing.assert_array_equal(r.dec_partner[keep.numpy()], keep.numpy())


# --------------------------------------------------------------------------------------------------------------
# Sparse == dense
# --------------------------------------------------------------------------------------------------------------
def _near_duplicates(
    seed: int, n_groups: int = 32, per_group: int = 8, d: int = 32, noise: float = 0.08, base_seed: int | None = None
) -> torch.Tensor:
    """Groups of near-identical latents: inside a group every pairing is almost equally good (many near-ties)."""
    base = _unit(torch.randn(n_groups, d, generator=_gen(seed if base_seed is None else base_seed)))
    base = base.repeat_interleave(per_group, 0)
    return _unit(base + noise * torch.randn(base.shape, generator=_gen(seed + 1000)))


def _rand(n: int, d: int, seed: int) -> torch.Tensor:
    return _unit(torch.randn(n, d, generator=_gen(seed)))


def _noisy(x: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    return _unit(x + sigma * torch.randn(x.shape, generator=_gen(seed)))


CASES = {
    "random": lambda: (_rand(300, 48, 10), _rand(300, 48, 11)),
    "noisy_copy": lambda: (x := _rand(400, 64, 12), _noisy(x, 0.12, 13)),
    # Same clusters in a and b, different noise: near-ties inside every group.
    "near_duplicates_same_groups": lambda: (
        _near_duplicates(14, base_seed=0),
        _near_duplicates(15, base_seed=0)[torch.randperm(256, generator=_gen(18))],
    ),
    # Different clusters: whole groups of a compete for the same group of b, so the top-m lists of a group all
    # point at the same few b-latents and the optimum needs pairs far down the lists (the hard case).
    "near_duplicates_other_groups": lambda: (_near_duplicates(16), _near_duplicates(17)),
    "rectangular_wide_b": lambda: (_rand(120, 32, 19), _rand(200, 32, 20)),
    "rectangular_wide_a": lambda: (_rand(200, 32, 21), _noisy(_rand(200, 32, 21)[:120], 0.3, 22)),
}


@pytest.mark.parametrize("top_m", [16, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_sparse_matches_dense(case, top_m):
    x, y = CASES[case]()
    dense = assign(x, y, method="dense")
    sparse = assign(x, y, method="sparse", top_m=top_m)
    assert _is_injective(sparse.partner) and _is_injective(dense.partner)
    assert (sparse.partner >= 0).sum() == (dense.partner >= 0).sum() == min(len(x), len(y))
    np.testing.assert_allclose(sparse.max_cos, dense.max_cos, atol=1e-5)
    ok = sparse.partner >= 0
    true = (x[torch.as_tensor(np.flatnonzero(ok))] * y[torch.as_tensor(sparse.partner[ok])]).sum(1).numpy()
    np.testing.assert_allclose(sparse.cos[ok], true, atol=1e-5)  # reported cosines are those of the chosen pairs
    if len(x) != len(y):  # no certificate for rectangular problems: optimal over the candidate graph only
        assert not sparse.certified and sparse.total <= dense.total + 1e-4
        if top_m == 16:
            assert sparse.total == pytest.approx(dense.total, abs=1e-4 * len(x))
        return
    # Square: the pricing check makes sparse exact whatever top_m. With near-ties the partners themselves may
    # differ, the total may not (certified: within n * 1e-5 of the optimum).
    assert sparse.certified
    assert sparse.total == pytest.approx(dense.total, abs=1e-5 * len(x))
    if case in ("random", "noisy_copy"):
        np.testing.assert_array_equal(sparse.partner, dense.partner)


def test_pricing_rounds_are_needed_on_the_hard_case():
    x, y = CASES["near_duplicates_other_groups"]()
    dense = assign(x, y, method="dense")
    unverified = assign(x, y, method="sparse", top_m=16, verify=False)
    verified = assign(x, y, method="sparse", top_m=16)
    assert unverified.total < dense.total - 1e-3 and not unverified.certified  # the candidates alone fall short
    assert verified.n_priced_edges > 0 and verified.certified


def test_infeasible_candidate_graph_is_completed_by_fallback_edges():
    """Every a-latent's nearest b-latent is the same hub: with top_m=1 the candidate graph has no full matching."""
    g = _gen(30)
    d, n = 32, 64
    hub = torch.zeros(d)
    hub[0] = 1.0
    x = _unit(hub + 0.2 * torch.randn(n, d, generator=g))
    y = torch.randn(n, d, generator=g)
    y[:, 0] = -3.0  # every other b-latent points away from the hub direction
    y[0] = hub
    y = _unit(y)
    dense = assign(x, y, method="dense")
    for verify in (False, True):
        sparse = assign(x, y, method="sparse", top_m=1, verify=verify)
        assert sorted(sparse.partner.tolist()) == list(range(n))  # still a full permutation
        assert sparse.total <= dense.total + 1e-5
        chosen = (x * y[torch.as_tensor(sparse.partner)]).sum(1).numpy()
        np.testing.assert_allclose(sparse.cos, chosen, atol=1e-5)
    unverified = assign(x, y, method="sparse", top_m=1, verify=False)
    assert unverified.n_fallback_edges > 0 and not unverified.certified
    # The pricing rounds then recover the exact optimum.
    assert sparse.certified and sparse.total == pytest.approx(dense.total, abs=1e-4)


def test_top_m_candidates_hold_row_and_column_top_m():
    x, y = _unit(torch.randn(90, 16, generator=_gen(40))), _unit(torch.randn(70, 16, generator=_gen(41)))
    cand = top_m_candidates(x, y, top_m=5, block=32)  # several blocks, last one ragged
    cos = (x @ y.T).numpy()
    edges = set(zip(cand.rows.tolist(), cand.cols.tolist()))
    assert len(edges) == len(cand.rows)  # no duplicates
    for i in range(90):
        assert {(i, int(j)) for j in np.argsort(-cos[i])[:5]} <= edges
    for j in range(70):
        assert {(int(i), j) for i in np.argsort(-cos[:, j])[:5]} <= edges
    np.testing.assert_allclose(cand.cos, cos[cand.rows, cand.cols], atol=1e-6)
    np.testing.assert_allclose(cand.row_max, cos.max(1), atol=1e-6)


def test_auto_picks_dense_or_sparse_by_size(sae_a):
    assert match_saes(sae_a, sae_a).method == "dense"
    assert match_saes(sae_a, sae_a, dense_max=100).method == "sparse"
    assert match_saes(sae_a, sae_a, method="sparse", dense_max=10**6).method == "sparse"


# --------------------------------------------------------------------------------------------------------------
# Analyses
# --------------------------------------------------------------------------------------------------------------
def test_shared_fraction_is_monotone_in_threshold(sae_a):
    g = _gen(50)
    sigma = torch.linspace(0.0, 0.4, D_SAE)[:, None]  # a spread of alignments
    b = _dirs(
        sae_a.enc + sigma * torch.randn(D_SAE, D_IN, generator=g),
        sae_a.dec + sigma * torch.randn(D_SAE, D_IN, generator=g),
    )
    r = match_saes(sae_a, b)
    grid = np.linspace(-1, 1, 41)
    curve = shared_fraction_curve(r, grid)
    for series in (curve.shared, curve.dec, curve.enc, curve.shared_same_partner, curve.maxcos_shared):
        assert np.all(np.diff(series) <= 0)
    assert curve.shared[0] == 1.0 and curve.shared[-1] == 0.0
    assert 0.1 < curve.shared[np.searchsorted(grid, 0.7)] < 0.9  # the example is not degenerate
    assert np.all(curve.shared <= np.minimum(curve.dec, curve.enc))
    assert np.all(curve.shared_same_partner <= curve.shared)
    assert np.all(curve.maxcos_shared >= curve.shared)  # a matched cosine never beats the best one
    i = int(np.argmin(np.abs(grid - 0.7)))
    assert curve.shared[i] == r.summary(grid[i]).frac_shared
    # alignment > t is the shared mask
    np.testing.assert_array_equal(alignment(r) > 0.7, r.shared)


def test_n_seeds_sharing_on_a_constructed_example():
    """Reference = e0..e7. Seed k holds copies of some of them; the rest of its latents are orthogonal."""
    d, n = 16, 8
    eye = torch.eye(d)
    ref = _dirs(eye[:n], eye[:n])

    def seed(copied: list[int], enc_elsewhere: tuple[int, ...] = (), perm_seed: int = 0) -> Directions:
        rows = copied + list(range(n, n + n - len(copied)))  # orthogonal fill-ins e8, e9, ...
        dec = eye[rows].clone()
        enc = dec.clone()
        for i in enc_elsewhere:  # decoder copied, encoder points elsewhere: not shared
            enc[copied.index(i)] = eye[15]
        p = torch.randperm(n, generator=_gen(perm_seed))
        return _dirs(enc[p], dec[p])

    others = [
        seed(list(range(8)), perm_seed=1),
        seed([0, 1, 2, 3], enc_elsewhere=(3,), perm_seed=2),
        seed([0, 1], perm_seed=3),
    ]
    results = match_to_reference(ref, others, method="dense")
    np.testing.assert_array_equal(n_seeds_sharing(results), [3, 3, 2, 1, 1, 1, 1, 1])
    # The same through the sparse solver, and at a threshold the orthogonal fill-ins pass (cos 0 > -0.5).
    sparse = match_to_reference(ref, others, method="sparse", top_m=2)
    np.testing.assert_array_equal(n_seeds_sharing(sparse), [3, 3, 2, 1, 1, 1, 1, 1])
    assert n_seeds_sharing(results, threshold=-0.5).tolist() == [3] * 8
    # Seed 2, latent 3: the decoder matching finds its copy, the encoder matching another partner.
    assert not results[1].same_partner[3] and results[1].dec_cos[3] == pytest.approx(1.0)


def test_alignment_by_bins():
    align = np.array([0.9, 0.8, 0.2, 0.95, np.nan, 0.1])
    freq = np.array([1e-4, 2e-4, 2e-3, 5e-3, 1e-3, 0.5])
    b = alignment_by_bins(align, freq, [1e-5, 1e-3, 1e-2, 1.0], threshold=0.7)
    assert b.count.tolist() == [2, 2, 1]
    np.testing.assert_allclose(b.mean_alignment, [0.85, 0.575, 0.1])
    np.testing.assert_allclose(b.frac_shared, [1.0, 0.5, 0.0])


def test_directions_take_encoder_columns_and_decoder_rows():
    w_enc, w_dec = _weights(8, 5, 60)
    fake = SimpleNamespace(W_enc=torch.nn.Parameter(w_enc), W_dec=torch.nn.Parameter(w_dec))  # requires grad
    dirs = directions_from_sae(fake)
    assert dirs.enc.shape == dirs.dec.shape == (5, 8)
    np.testing.assert_allclose(dirs.enc[2].numpy(), (w_enc[:, 2] / w_enc[:, 2].norm()).numpy(), atol=1e-6)
    np.testing.assert_allclose(dirs.dec[2].numpy(), (w_dec[2] / w_dec[2].norm()).numpy(), atol=1e-6)
    enc_cos, dec_cos = cosine_matrices(dirs, unit_directions(w_enc.numpy(), w_dec.numpy()))  # numpy input too
    np.testing.assert_allclose(np.diag(enc_cos), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.diag(dec_cos), 1.0, atol=1e-6)


def test_real_sae_lens_object():
    sae_lens = pytest.importorskip("sae_lens")
    sae = sae_lens.StandardSAE(sae_lens.StandardSAEConfig(d_in=16, d_sae=32))
    torch.nn.init.normal_(sae.W_enc)
    torch.nn.init.normal_(sae.W_dec)
    r = match_saes(directions_from_sae(sae), directions_from_sae(sae))
    assert r.summary().frac_shared == 1.0


# --------------------------------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------------------------------
def test_bad_inputs_raise_value_error_naming_the_parameter(sae_a):
    other_d_in = unit_directions(*_weights(D_IN + 1, D_SAE, 1))
    with pytest.raises(ValueError, match="same d_in"):
        match_saes(sae_a, other_d_in)
    with pytest.raises(ValueError, match=r"W_enc must be \(d_in, d_sae\)"):
        unit_directions(torch.randn(8, 5), torch.randn(8, 5))
    with pytest.raises(ValueError, match="W_dec must be a 2-D"):
        unit_directions(torch.randn(8, 5), torch.randn(5))
    for bad in (1.5, -1.01, float("nan")):
        with pytest.raises(ValueError, match=r"threshold must be a cosine in \[-1, 1\]"):
            match_saes(sae_a, sae_a, threshold=bad)
    r = match_saes(sae_a, sae_a)
    with pytest.raises(ValueError, match=r"threshold must be a cosine in \[-1, 1\]"):
        r.summary(2.0)
    with pytest.raises(ValueError, match=r"thresholds must be a cosine in \[-1, 1\]"):
        shared_fraction_curve(r, [0.5, 1.2])
    with pytest.raises(ValueError, match=r"method must be one of \('auto', 'dense', 'sparse'\)"):
        match_saes(sae_a, sae_a, method="exact")
    with pytest.raises(ValueError, match="top_m must be an integer >= 1"):
        match_saes(sae_a, sae_a, method="sparse", top_m=0)
    with pytest.raises(ValueError, match="max_rounds must be an integer >= 0"):
        match_saes(sae_a, sae_a, method="sparse", max_rounds=-1)
    with pytest.raises(ValueError, match="results must hold at least one"):
        n_seeds_sharing([])
    small = unit_directions(*_weights(D_IN, 10, 2))
    with pytest.raises(ValueError, match="same reference SAE"):
        n_seeds_sharing([r, match_saes(small, sae_a)])
    with pytest.raises(ValueError, match="edges must be"):
        alignment_by_bins(np.ones(3), np.ones(3), [1.0, 0.5])
