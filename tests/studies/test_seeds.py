"""Notebook 07's compute: the data seed fixes the batch order alone, identical SAEs share every latent, the L1
calibration reaches its target L0, the grid's tables, and the toy part's known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _tiny_model import tiny_model, tiny_windows

from rsae_utils.sae.cache import ActivationCache
from rsae_utils.sae.harvest import harvest
from rsae_utils.sae.train import SAESpec, train_sae
from rsae_utils.store import read_json
from rsae_utils.studies.seeds.activity import (
    activity,
    encode_test,
    encode_test_topk,
    latent_stats,
    latent_stats_topk,
    measure_l0,
)
from rsae_utils.studies.seeds.grid import (
    Cell,
    SeedGrid,
    at_threshold,
    calibrate_l1,
    grid_cells,
    match_seeds,
    seed_sae_name,
    summary_table,
    train_seeds,
)
from rsae_utils.studies.seeds.toy import toy_seed_stability, toy_summary
from rsae_utils.toys.mmcs import TrainSpec
from rsae_utils.toys.synthetic import SparseFeatureWorld, SyntheticSpec

META = {"model": "tiny-test", "variant": "trained", "seed": 0, "corpus_sha256": "abc"}
BASE = SAESpec(expansion=2, k=4, n_tokens=1024, batch_size=128, lr=4e-3)
THRESHOLDS = [0.0, 0.5, 0.7, 0.9, 1.0]


@pytest.fixture(autouse=True)
def one_thread():
    """These matrices are tiny: one thread is faster than several waiting for each other on a busy CPU."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    windows = tiny_windows(n_train=64, n_test=16, ctx=16)
    return harvest(tiny_model(), windows, [1], tmp_path_factory.mktemp("cache"), META, batch_size=16)


def test_data_seed_fixes_the_batch_order_and_defaults_to_seed(cache, tmp_path, monkeypatch):
    assert SAESpec(seed=3).batch_seed == 3  # None: one seed fixes both, as before
    assert SAESpec(seed=3, data_seed=0).batch_seed == 0
    seen = []
    original = ActivationCache.iter_batches

    def spy(self, layer, batch_size, **kw):
        it = original(self, layer, batch_size, **kw)
        first = next(it)
        seen.append((kw["seed"], first.clone()))
        yield first
        yield from it

    monkeypatch.setattr(ActivationCache, "iter_batches", spy)
    spec = SAESpec(expansion=1, k=2, n_tokens=256, batch_size=128)
    dirs = train_seeds(cache, 1, spec, [0, 5], data_seed=7, sae_dir=lambda name: tmp_path / name)
    assert [s for s, _ in seen] == [7, 7]
    assert np.array_equal(seen[0][1].numpy(), seen[1][1].numpy())  # the same first batch for both init seeds
    assert dirs[0].name == seed_sae_name(1, SAESpec(**{**spec.__dict__, "seed": 0, "data_seed": 7}))
    assert "-s0-d7-" in dirs[0].name and "-s5-d7-" in dirs[1].name


def test_identical_saes_share_every_latent_and_seeds_share_fewer(cache, tmp_path):
    spec = SAESpec(**{**BASE.__dict__, "data_seed": 0})
    a = train_sae(cache, 1, spec, tmp_path / "a")
    b = train_sae(cache, 1, spec, tmp_path / "b")  # same spec: the same weights
    out = match_seeds([a, b], cache, 1, tmp_path / "m_same", THRESHOLDS)
    at7 = out["pairs"].set_index("threshold").loc[0.7]
    assert at7.shared == 1.0 and at7.same_partner == 1.0 and at7.dec == 1.0 and at7.enc == 1.0
    # counted the other ways: every live latent shared with its live twin; the same after the top-PC removal
    assert at7.shared_live == 1.0 and at7.same_partner_live == 1.0
    assert at7.enc_pc1_removed == 1.0 and at7.shared_pc1_removed == 1.0
    assert out["seeds"].enc_pc1_share.nunique() == 1 and out["seeds"].enc_pc1_share.between(0, 1).all()
    assert (out["latents"].n_sharing == 1).all() and np.allclose(out["latents"].align_mean, 1.0, atol=1e-5)

    dirs = train_seeds(cache, 1, BASE, [0, 1, 2], data_seed=0, sae_dir=lambda name: tmp_path / name)
    out = match_seeds(dirs, cache, 1, tmp_path / "m_seeds", THRESHOLDS)
    pairs = out["pairs"]
    assert len(pairs) == 3 * len(THRESHOLDS) and set(zip(pairs.seed_a, pairs.seed_b)) == {(0, 1), (0, 2), (1, 2)}
    for col in ("shared", "same_partner", "dec", "enc", "maxcos_shared"):
        assert pairs[col].between(0, 1).all()
    assert (pairs[pairs.threshold == 0.7].shared < 1.0).all()  # other init seeds: not everything is shared
    assert (pairs.shared <= np.minimum(pairs.dec, pairs.enc) + 1e-12).all()
    # of live latents: the same-partner ones are among the shared ones, and the live shared latents (a's live
    # fraction times their share) are among the shared latents of all
    assert (pairs.same_partner_live <= pairs.shared_live + 1e-12).all()
    live_a = 1 - pairs.seed_a.map(out["seeds"].set_index("seed").dead_fraction)
    assert (pairs.shared_live * live_a <= pairs.shared + 1e-9).all()
    assert pairs.enc_pc1_removed.between(0, 1).all() and (pairs.shared_pc1_removed <= pairs.enc_pc1_removed).all()
    assert set(out["latents"].n_sharing) <= {0, 1, 2}
    assert out["seeds"].l0.tolist() == pytest.approx([4.0, 4.0, 4.0])


@pytest.mark.parametrize("trainer", ["fast", "sae-lens"])
def test_topk_codes_give_the_dense_latent_stats(cache, tmp_path, trainer):
    """match_seeds reads a TopK SAE's held-out activity from its (N, k) codes: the same firing frequencies, token
    entropies, L0 and dead fraction as from the dense latent tensor (a boundary token left out as in the runs).
    sae-lens's trainer saves SAEs that rescale by the decoder norms: folded in, the same codes."""
    from rsae_utils.sae.train import load_sae

    spec = SAESpec(**{**BASE.__dict__, "trainer": trainer, "expansion": 4, "k": 3})
    sae = load_sae(train_sae(cache, 1, spec, tmp_path / trainer))
    exclude = [int(cache.tokens("test")[0, 0])]
    vals, idx, tok = encode_test_topk(sae, cache, 1, exclude, matmul_dtype="float32")  # bf16: test_codes.py
    z, tok_dense = encode_test(sae, cache, 1, exclude)
    assert torch.equal(tok, tok_dense) and vals.shape == (len(z), 3)
    # the codes are the dense tensor's non-zeros
    dense = torch.zeros_like(z).scatter_(1, idx, vals)
    assert torch.allclose(dense, z, rtol=1e-5, atol=1e-5) and torch.equal(dense > 0, z > 0)
    for top_n in (1, 5, 1000):  # 1000: more than any latent's activations
        a, b = latent_stats_topk(vals, idx, tok, sae.cfg.d_sae, top_n), latent_stats(dense, tok, top_n)
        assert a.latent.tolist() == b.latent.tolist()
        assert np.array_equal(a.freq.to_numpy(), b.freq.to_numpy())
        assert np.allclose(a.token_entropy, b.token_entropy, equal_nan=True, rtol=1e-12, atol=1e-12)
    assert np.isnan(a.token_entropy[a.freq == 0]).all() and (a.freq == 0).any() and (a.freq > 0).any()
    pos = vals > 0
    act = activity(pos.sum(1), torch.bincount(idx[pos], minlength=sae.cfg.d_sae) > 0)
    active = dense > 0
    assert act == activity(active.sum(1), active.any(0))
    assert act["l0"] == pytest.approx(float(active.float().sum(1).mean()))
    assert act["dead_fraction"] == pytest.approx(float((~active.any(0)).float().mean())) and act["dead_fraction"] > 0


def test_l1_calibration_reaches_the_target_l0(cache, tmp_path):
    spec = SAESpec(
        architecture="relu", expansion=2, l1_coefficient=5.0, n_tokens=2048, batch_size=128, lr=4e-3, data_seed=0
    )
    cal = calibrate_l1(
        cache,
        1,
        spec,
        6.0,
        lambda name: tmp_path / "saes" / name,
        tmp_path / "cal",
        n_tokens=1024,
        tol=0.1,
        max_iter=6,
        full_iter=3,
    )
    assert abs(cal["l0"] / 6.0 - 1) <= 0.2 and cal["tokens"] == 2048
    # the chosen L1's full run is the first seed's SAE: training that seed reuses it, with the same L0
    path = train_seeds(
        cache,
        1,
        SAESpec(**{**spec.__dict__, "l1_coefficient": cal["l1"]}),
        [0],
        0,
        lambda name: tmp_path / "saes" / name,
    )[0]
    assert measure_l0(path, cache, 1) == pytest.approx(cal["l0"])
    again = calibrate_l1(
        cache,
        1,
        spec,
        6.0,
        lambda name: tmp_path / "saes" / name,
        tmp_path / "cal",
        n_tokens=1024,
        tol=0.1,
        max_iter=6,
        full_iter=3,
    )
    assert again == cal


def test_grid_cells():
    cells = grid_cells([2, 4], [16, 32], base_expansion=4, base_k=32)
    assert cells == [Cell("topk", 2, 32), Cell("topk", 4, 16), Cell("topk", 4, 32), Cell("relu", 4, 32)]
    assert len(grid_cells([2, 4], [16, 32], 4, 32, relu="all")) == 6
    assert all(c.architecture == "topk" for c in grid_cells([2], [8], 2, 8, relu="none"))
    with pytest.raises(ValueError, match="relu"):
        grid_cells([2], [8], 2, 8, relu="some")


def test_seed_grid_tables(cache, tmp_path):
    grid = SeedGrid(
        {"trained": cache},
        1,
        BASE,
        [0, 1, 2],
        0,
        sae_dir=lambda v, n: tmp_path / v / n,
        analysis_root=tmp_path / "an",
        thresholds=THRESHOLDS,
        calib_tokens=512,
    )
    res = grid.run([Cell("topk", 2, 4), Cell("relu", 2, 4)], progress=False)
    table = summary_table(res)
    assert {
        "variant",
        "layer",
        "architecture",
        "R",
        "k",
        "seed_pair",
        "threshold",
        "shared_fraction",
        "same_partner_fraction",
        "l0",
        "shared_live_fraction",
        "same_partner_live_fraction",
        "enc_pc1_removed_fraction",
        "shared_pc1_removed_fraction",
        "enc_pc1_share",
        "dec_pc1_share",
    } <= set(table.columns)
    assert set(table.architecture) == {"topk", "relu"} and table.seed_pair.nunique() == 3
    assert table.shared_fraction.between(0, 1).all() and table.same_partner_fraction.between(0, 1).all()
    at = at_threshold(table).set_index("architecture")
    assert at.loc["topk", "l0"] == pytest.approx(4.0) and (at.pairs == 3).all()
    assert {"shared_live", "same_partner_live", "enc", "enc_pc1_removed", "enc_pc1_share"} <= set(at.columns)
    assert len(res["calibration"]) == 1 and res["calibration"].target_l0.iloc[0] == 4
    # TopK cells train with sae-lens's trainer unless told otherwise; ReLU cells always (the one that has them)
    records = tmp_path.glob("trained/*/training_record.json")
    trainers = {p.parent.name.split("-")[1]: read_json(p)["trainer"] for p in records}
    assert trainers["topk"] == trainers["relu"] == "sae_lens.SAETrainer"
    grid.topk_trainer = "fast"
    assert grid.spec("trained", Cell("topk", 2, 4))[0].trainer == "fast"
    assert grid.spec("trained", Cell("relu", 2, 4))[0].trainer == "sae-lens"


def test_toy_identical_seeds_share_all_live_latents():
    world = SparseFeatureWorld(SyntheticSpec(n_features=24, d_model=12, world_seed=0, n_calib=1024))
    spec = TrainSpec(steps=60, lr=1e-2, batch=64)
    lat, seeds = toy_seed_stability(world, ["raw"], 24, 0.3, [4, 4], data_seed=0, spec=spec, n_eval=512)
    live = lat[lat.alive]
    assert len(live) > 0 and live.shared_all.all() and np.allclose(live.align_s4, 1.0, atol=1e-5)
    assert seeds.mmcs.nunique() == 1 and lat.truth_cos.between(-1, 1 + 1e-6).all()
    summary = toy_summary(lat)
    assert summary.group.tolist() == ["shared by all seeds"] and summary.latents.iloc[0] == len(live)

    lat, _ = toy_seed_stability(world, ["raw", "mlp"], 24, 0.3, [0, 1, 2], data_seed=0, spec=spec, n_eval=512)
    assert set(lat.condition) == {"raw", "mlp"} and {"align_s1", "align_s2"} <= set(lat.columns)
    assert lat.n_sharing.between(0, 2).all()
