"""MMCS known answers, batched == one-at-a-time training, the zone on a small problem, and the sweep table."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from rsae_utils.toys.mmcs import (
    SWEEP_COLUMNS,
    TrainSpec,
    evaluate_one,
    grid,
    max_cosines,
    mmcs,
    mmcs_batched,
    run_sweep,
    summarize,
    train_batched,
    train_one,
)
from rsae_utils.toys.synthetic import DataStream, SparseFeatureWorld, SyntheticSpec


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small matrices: one thread is faster than two that wait on each other on a shared 2-core machine."""
    from rsae_utils.toys.mmcs import torch_threads

    with torch_threads(1):
        yield


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True)


def test_permuted_copy_gives_one():
    f = _unit(torch.randn(50, 20, generator=torch.Generator().manual_seed(0)))
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(1))
    assert mmcs(f[perm] * 3.0, f) == pytest.approx(1.0, abs=1e-6)  # atom scale does not matter
    extra = torch.cat([f[perm], torch.randn(30, 20)])
    assert mmcs(extra, f) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("m", [1, 5, 13])
def test_missing_orthonormal_features_lower_mmcs_exactly(m):
    G = 16
    f = torch.eye(G, 32)
    # A missing orthonormal feature's best cosine with the rest is 0: MMCS = (G - m) / G.
    assert mmcs(f[m:], f) == pytest.approx((G - m) / G, abs=1e-6)


def test_missing_features_lower_mmcs_by_their_best_remaining_cosine():
    G, m = 40, 7
    f = _unit(torch.randn(G, 16, generator=torch.Generator().manual_seed(2)))
    kept = f[m:]
    gram = f @ f.T
    # Analytically: kept features score 1; a missing one scores its largest cosine with a kept feature.
    expected = (G - m + float(gram[:m, m:].max(dim=1).values.sum())) / G
    assert mmcs(kept, f) == pytest.approx(expected, abs=1e-5)
    assert mmcs(kept, f) < 1.0 - 1e-3
    assert torch.allclose(max_cosines(kept, f)[m:], torch.ones(G - m), atol=1e-5)


def test_mmcs_batched_matches_single():
    w = torch.randn(3, 24, 16)
    f = _unit(torch.randn(10, 16))
    out = mmcs_batched(w, f)
    assert torch.allclose(out, torch.tensor([mmcs(w[i], f) for i in range(3)]), atol=1e-6)


def test_lr_schedule_decays_linearly_to_zero():
    spec = TrainSpec(steps=10, decay_frac=0.5)
    f = [spec.lr_factor(t) for t in range(10)]
    assert f[:5] == [1.0] * 5
    assert all(a > b for a, b in zip(f[4:], f[5:])) and 0 < f[-1] < 0.2
    assert TrainSpec(steps=10, decay_frac=0.0).lr_factor(9) == 1.0


@pytest.fixture(scope="module")
def small_world() -> SparseFeatureWorld:
    return SparseFeatureWorld(SyntheticSpec(n_features=64, d_model=32, mean_active=3.0, n_calib=2048))


def test_batched_trainer_matches_one_at_a_time(small_world):
    spec = TrainSpec(steps=40, lr=3e-3, batch=64)
    conds, seeds, l1s = ["raw", "mlp", "gaussian"], [0, 1], [0.05, 0.5]
    g = grid(conds, seeds, l1s)
    stacked = train_batched(
        DataStream(small_world, conds, seeds, 64), g["group"].tolist(), g["l1"].tolist(), g["seed"].tolist(), 96, spec
    )
    for m, row in g.iterrows():
        stream = DataStream(small_world, [row.condition], [row.seed], 64)
        w_enc, b_enc, w_dec = train_one(lambda s=stream: s.next()[0], row.l1, row.seed, 96, 32, spec)
        assert torch.allclose(w_dec, stacked.w_dec[m], atol=1e-5), m
        assert torch.allclose(w_enc, stacked.w_enc[m], atol=1e-5), m
        assert torch.allclose(b_enc, stacked.b_enc[m, 0], atol=1e-5), m
    # And the models really trained (moved away from the shared init) and differ by l1.
    assert not torch.allclose(stacked.w_dec[0], stacked.w_dec[1], atol=1e-3)


def test_zone_recovers_features_and_huge_l1_kills_latents():
    """A small world (32 features in 24 dims, 64 latents): the zone recovers the features; both ends fail."""
    world = SparseFeatureWorld(
        SyntheticSpec(n_features=32, d_model=24, mean_active=3.0, decay=0.97, n_calib=2048, world_seed=1)
    )
    spec = TrainSpec(steps=400, lr=1e-2, batch=128, betas=(0.9, 0.99))
    df = run_sweep(world, ["raw"], [64], [0.003, 0.3, 1000.0], [0], spec, n_eval=2048)
    small, in_zone, huge = df.iloc[0], df.iloc[1], df.iloc[2]
    assert in_zone["mmcs"] > 0.9, df
    assert small["mmcs"] < in_zone["mmcs"] - 0.05, df  # too little L1: dense mixtures, not features
    # A huge L1 silences the dictionary. Adam's step does not grow with the penalty, so a handful of latents can
    # keep firing on a sliver of inputs; "dead" here means: >= 90% of latents never fire and < 1 active latent
    # per 100 samples, and nothing is reconstructed.
    assert huge["dead_frac"] >= 0.9 and huge["l0"] < 0.01, df
    assert huge["fvu"] > 0.98
    assert huge["mmcs"] < in_zone["mmcs"] - 0.3


def test_evaluate_one_known_answer():
    # An identity SAE on non-negative data reconstructs exactly with every latent used.
    x = torch.rand(100, 5) + 0.1
    w = torch.eye(5)
    out = evaluate_one(w, torch.zeros(5), w, x)
    assert out["fvu"] == pytest.approx(0.0, abs=1e-10) and out["l0"] == 5.0 and out["dead_frac"] == 0.0


def test_sweep_table_and_summary(small_world):
    spec = TrainSpec(steps=20, lr=1e-2, batch=32)
    df = run_sweep(small_world, ["raw", "gaussian"], [32, 64], [0.01, 0.1, 1.0], [0, 1], spec, n_eval=256)
    assert list(df.columns[: len(SWEEP_COLUMNS)]) == list(SWEEP_COLUMNS)
    assert len(df) == 2 * 2 * 3 * 2
    assert set(df["condition"]) == {"raw", "gaussian"} and set(df["dict_size"]) == {32, 64}
    assert df["mmcs"].between(0, 1).all() and df["dead_frac"].between(0, 1).all()
    s = summarize(df)
    assert len(s) == 4 and {"best_mmcs", "best_l1", "zone"} <= set(s.columns)


def test_summary_zone_flag():
    rows = [
        {"condition": "raw", "dict_size": 8, "l1": l1, "seed": 0, "mmcs": v}
        for l1, v in [(0.1, 0.5), (1.0, 0.95), (10.0, 0.3)]
    ]
    rows += [
        {"condition": "mlp", "dict_size": 8, "l1": l1, "seed": 0, "mmcs": v}
        for l1, v in [(0.1, 0.5), (1.0, 0.7), (10.0, 0.9)]
    ]
    s = summarize(pd.DataFrame(rows)).set_index("condition")
    assert bool(s.loc["raw", "zone"]) and s.loc["raw", "best_l1"] == 1.0
    assert not bool(s.loc["mlp", "zone"])
    assert math.isclose(s.loc["mlp", "best_mmcs"], 0.9)


def test_splitting_by_seed_does_not_change_numbers(small_world):
    spec = TrainSpec(steps=10, lr=1e-2, batch=32)
    args = (small_world, ["raw", "mlp"], [32], [0.1, 1.0], [0, 1], spec)
    together = run_sweep(*args, n_eval=256)
    split = run_sweep(*args, n_eval=256, seeds_per_program=1)
    cols = ["condition", "dict_size", "l1", "seed", "mmcs", "l0", "fvu", "dead_frac"]
    pd.testing.assert_frame_equal(together[cols], split[cols], atol=1e-6)


def test_trend_seeds_train_the_smaller_dictionaries_with_fewer_seeds_and_the_same_numbers(small_world):
    """The largest dictionary keeps every seed; the smaller ones train only ``trend_seeds``, and those SAEs are
    the ones the full grid trains (a seed's stream and initialisation do not depend on the other seeds)."""
    spec = TrainSpec(steps=10, lr=1e-2, batch=32)
    args = (small_world, ["raw"], [16, 32], [0.1, 1.0], [0, 1, 2], spec)
    full = run_sweep(*args, n_eval=256)
    cut = run_sweep(*args, n_eval=256, trend_seeds=[1])
    assert set(cut[cut.dict_size == 32].seed) == {0, 1, 2} and set(cut[cut.dict_size == 16].seed) == {1}
    cols = ["condition", "dict_size", "l1", "seed", "mmcs", "l0", "fvu", "dead_frac"]
    keep = full[(full.dict_size == 32) | (full.seed == 1)].reset_index(drop=True)
    pd.testing.assert_frame_equal(keep[cols], cut[cols], atol=1e-6)
