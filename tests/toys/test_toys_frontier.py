"""Frontiers, their comparison, the row stream and the embedding sweep: known answers and small end-to-end runs."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from rsae_utils.toys import frontier as fr
from rsae_utils.toys import sparsity as sp
from rsae_utils.toys.mmcs import TrainSpec, evaluate_one


def test_per_sample_torch_matches_numpy_definitions():
    z = torch.relu(torch.randn(50, 12, generator=torch.Generator().manual_seed(0)))
    z[3] = 0.0  # a zero row: NaN ratio and Hoyer, left out of the means
    per = sp.per_sample_torch(z)
    np.testing.assert_allclose(per["l0"].numpy(), sp.l0(z, per_sample=True))
    np.testing.assert_allclose(per["l1"].numpy(), sp.l1(z, per_sample=True), rtol=1e-6)
    np.testing.assert_allclose(per["l1_over_sqrt_l2"].numpy(), sp.l1_over_sqrt_l2(z, per_sample=True), rtol=1e-6)
    np.testing.assert_allclose(per["hoyer"].numpy(), sp.hoyer(z, per_sample=True), rtol=1e-6, atol=1e-7)
    means = sp.mean_per_sample([sp.per_sample_torch(z[:20]), sp.per_sample_torch(z[20:])])
    for k, v in sp.sparsity_summary(z).items():
        assert means[k] == pytest.approx(v, rel=1e-6)
    # known vectors: one-hot -> Hoyer 1, ratio 1; two equal entries of four -> Hoyer 2 - sqrt 2
    known = sp.per_sample_torch(torch.tensor([[0.0, 3.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]))
    assert known["hoyer"].tolist() == pytest.approx([1.0, 2 - math.sqrt(2)])
    assert known["l1_over_sqrt_l2"].tolist() == pytest.approx([1.0, math.sqrt(2)])


def test_evaluate_one_reports_code_sparsity():
    x = torch.rand(100, 5) + 0.1
    w = torch.eye(5)
    out = evaluate_one(w, torch.zeros(5), w, x)
    assert out["l1_norm"] == pytest.approx(float(x.sum(1).mean()), rel=1e-6)
    assert out["hoyer"] == pytest.approx(sp.hoyer(x), rel=1e-6) and out["l0"] == 5.0


def test_best_ev_at_and_compare_known_frontiers():
    a = np.array([(1.0, 0.5), (2.0, 0.7), (4.0, 0.9)])
    np.testing.assert_allclose(fr.best_ev_at(a, [0.5, 1.0, 1.5, 3.0, 10.0]), [np.nan, 0.5, 0.5, 0.7, 0.9])
    # Hoyer-like: higher is sparser, so "at least as sparse" means >=
    h = np.array([(0.5, 0.9), (0.8, 0.5)])
    np.testing.assert_allclose(fr.best_ev_at(h, [0.9, 0.8, 0.6, 0.4], lower_is_sparser=False), [np.nan, 0.5, 0.5, 0.9])
    # read as drawn: linear between points in log x, NaN outside the frontier's range
    np.testing.assert_allclose(fr.ev_on_frontier(a, [0.5, 1.0, 2.0, 4.0, 5.0]), [np.nan, 0.5, 0.7, 0.9, np.nan])
    assert fr.ev_on_frontier(a, [math.sqrt(2)])[0] == pytest.approx(0.6)  # halfway in log x
    assert fr.ev_on_frontier(a, [1.5], log_x=False)[0] == pytest.approx(0.6)
    # b is a copy of a lowered by 0.1: a is above everywhere on the shared range, by exactly 0.1
    b = a - [0.0, 0.1]
    c = fr.compare(a, b)
    assert (c["lo"], c["hi"]) == (1.0, 4.0) and c["gap"] == pytest.approx(0.1)
    assert (c["share_above"], c["share_below"]) == (1.0, 0.0)
    r = fr.compare(b, a)
    assert r["gap"] == pytest.approx(-0.1) and (r["share_above"], r["share_below"]) == (0.0, 1.0)
    # points below min_ev (dead SAEs) do not stretch the shared range
    assert fr.compare(np.vstack([[(0.01, 0.0)], a]), b)["lo"] == 1.0
    # crossing frontiers: a above on the sparse half, below on the dense half
    cross = fr.compare(np.array([(1.0, 0.6), (4.0, 0.6)]), np.array([(1.0, 0.4), (4.0, 0.8)]))
    assert cross["gap"] == pytest.approx(0.0, abs=1e-9) and 0.4 < cross["share_above"] < 0.6
    assert math.isnan(fr.compare(a, np.array([(5.0, 0.9), (6.0, 1.0)]))["gap"])  # no overlap
    assert math.isnan(fr.compare(a, np.zeros((0, 2)))["gap"])
    assert fr.verdict(**{k: c[k] for k in ("share_above", "share_below")}) == "above"
    assert fr.verdict(0.0, 1.0) == "below" and fr.verdict(0.1, 0.2) == "about level with"
    assert fr.verdict(cross["share_above"], cross["share_below"]) == "crossing"
    assert fr.verdict(math.nan, math.nan).startswith("not comparable")


def test_frontier_table_is_monotone_and_uses_each_measures_direction():
    rng = np.random.default_rng(0)
    n = 60
    df = pd.DataFrame(
        {
            "condition": ["a"] * n + ["b"] * n,
            "fvu": rng.random(2 * n),
            **{m: rng.random(2 * n) * 10 for m in fr.MEASURES},
        }
    )
    t = fr.frontier_table(df)
    assert set(t["measure"]) == set(fr.MEASURES) and set(t["condition"]) == {"a", "b"}
    for (m, _), f in t.groupby(["measure", "condition"]):
        f = f.sort_values("sparsity")
        ev = f["ev"].to_numpy()
        # lower-is-sparser: EV rises with the measure along the frontier; Hoyer: it falls
        assert (np.diff(ev) > 0).all() if fr.MEASURES[m][1] else (np.diff(ev) < 0).all()
    # the single best-EV SAE is always on the frontier
    best = df.loc[df["fvu"].idxmin()]
    sub = t[(t["condition"] == best["condition"]) & (t["measure"] == "l0")]
    assert sub["ev"].max() == pytest.approx(1 - best["fvu"])


def test_prepare_rows_and_gaussian_like():
    w = torch.randn(600, 8, generator=torch.Generator().manual_seed(1)) * 3 + 5.0
    train, held, info = fr.prepare_rows(w, n_rows=500, n_eval=100, target_ms=2.0, seed=0)
    assert train.shape == (400, 8) and held.shape == (100, 8) and info["d"] == 8
    assert train.mean(0).abs().max() < 1e-5  # centred on the training mean
    assert float(train.pow(2).sum(1).mean()) == pytest.approx(2.0, rel=1e-5)
    assert info["mean_row_norm"] == pytest.approx(5.0 * math.sqrt(8), rel=0.1)
    with pytest.raises(ValueError, match="n_eval"):
        fr.prepare_rows(w, n_rows=50, n_eval=50, target_ms=1.0)
    # matched Gaussian: same mean and covariance as the rows, also for a singular covariance
    a = torch.randn(5000, 3, generator=torch.Generator().manual_seed(2)) @ torch.tensor(
        [[2.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.5]]
    )
    g = fr.GaussianLike(a + 1.0)
    s = g.sample(20000, torch.Generator().manual_seed(3))
    np.testing.assert_allclose(s.mean(0), (a + 1.0).mean(0), atol=0.05)
    np.testing.assert_allclose(torch.cov(s.T), torch.cov(a.T), atol=0.1)
    flat = fr.GaussianLike(torch.randn(2, 4))  # 2 rows in 4 dims: rank 1, still samples
    assert flat.sample(5, torch.Generator().manual_seed(0)).shape == (5, 4)


def test_row_stream_groups_are_independent():
    rows = torch.arange(40.0).reshape(20, 2)
    g = fr.GaussianLike(torch.randn(50, 2))
    big = fr.RowStream({"r": rows, "g": g}, [("r", 0), ("r", 1), ("g", 0)], batch=4)
    one = fr.RowStream({"r": rows}, [("r", 0)], batch=4)
    b = big.next()
    assert b.shape == (3, 4, 2) and big.d_model == 2
    assert torch.equal(b[0], one.next()[0])  # the group's batch does not depend on its neighbours
    assert all(any(torch.equal(x, r) for r in rows) for x in b[0])  # real rows, drawn from the matrix
    with pytest.raises(ValueError, match="dimension"):
        fr.RowStream({"r": rows, "s": torch.zeros(3, 5)}, [("r", 0)], batch=2)


def test_row_sweep_trades_variance_for_sparsity():
    # Sparse rows: 3 active of 16 directions. More L1 -> sparser codes and less explained variance.
    gen = torch.Generator().manual_seed(0)
    codes = torch.rand(3000, 16, generator=gen) * (torch.rand(3000, 16, generator=gen) < 0.2)
    x = codes @ torch.randn(16, 8, generator=gen)
    x = x - x.mean(0)
    spec = TrainSpec(steps=200, lr=1e-2, batch=64, betas=(0.9, 0.99))
    df = fr.run_row_sweep({"rows": x[:2500]}, {"rows": x[2500:]}, [16], [0.01, 3.0], [0], spec)
    assert list(df.columns) == list(fr.ROW_COLUMNS) and len(df) == 2
    lo, hi = df.sort_values("l1").itertuples()
    assert hi.l0 < lo.l0 and hi.fvu > lo.fvu and lo.fvu < 0.2
