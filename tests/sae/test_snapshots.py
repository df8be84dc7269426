"""Snapshots of one run are the SAEs of shorter runs: same weights, same artifact key (train_sae reuses them)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from _tiny_model import tiny_model, tiny_windows

from rsae_utils.errors import ParameterError
from rsae_utils.sae.harvest import harvest
from rsae_utils.sae.snapshots import geometric_budgets, snapshot_spec, train_snapshots
from rsae_utils.sae.spec import SAESpec
from rsae_utils.sae.train import load_record, load_sae, train_sae
from rsae_utils.store import load_manifest

META = {"model": "tiny-test", "variant": "trained", "seed": 0, "corpus_sha256": "abc"}
SPEC = SAESpec(architecture="topk", trainer="fast", expansion=4, k=6, n_tokens=4096, batch_size=128, lr=4e-3, seed=3)


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    windows = tiny_windows(n_train=64, n_test=16, ctx=16)
    return harvest(tiny_model(), windows, [1], tmp_path_factory.mktemp("cache"), META, batch_size=16)


def test_geometric_budgets():
    assert geometric_budgets(4096, 1_048_576) == [4096 * 4**i for i in range(5)]
    assert geometric_budgets(100, 1000, 3) == [100, 300, 900]
    with pytest.raises(ParameterError, match="'start', 'stop', 'factor'"):
        geometric_budgets(10, 5)


def test_snapshots_equal_independent_runs_and_are_reused(tiny_cache, tmp_path):
    cache = tiny_cache
    budgets = [256, 1024, 2048]
    out = train_snapshots(cache, 1, SPEC, budgets, lambda s: tmp_path / "snap" / f"t{s.n_tokens}")
    assert sorted(out) == budgets
    for b in budgets:
        ref = load_sae(train_sae(cache, 1, snapshot_spec(SPEC, b), tmp_path / "ref" / f"t{b}"))
        snap = load_sae(out[b])
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            assert torch.equal(getattr(snap, name).detach(), getattr(ref, name).detach()), (b, name)
        rec = load_record(out[b])
        assert rec["tokens_trained"] == b and rec["steps"] == b // 128
        assert rec["loss_curve"][-1]["step"] == b // 128
        # the same key as train_sae's: train_sae on the snapshot's folder reuses it (no rebuild, same manifest)
        before = load_manifest(out[b])["created"]
        train_sae(cache, 1, snapshot_spec(SPEC, b), out[b])
        assert load_manifest(out[b])["created"] == before
    # all there: a second call trains nothing and returns the same folders
    again = train_snapshots(cache, 1, SPEC, budgets, lambda s: tmp_path / "snap" / f"t{s.n_tokens}")
    assert again == out


def test_snapshot_rules_are_checked(tiny_cache, tmp_path):
    with pytest.raises(ParameterError, match="'budgets'"):
        train_snapshots(tiny_cache, 1, SPEC, [100], lambda s: tmp_path / "x")
    with pytest.raises(ParameterError, match="'spec.trainer'"):
        train_snapshots(tiny_cache, 1, replace(SPEC, trainer="sae-lens"), [128], lambda s: tmp_path / "x")
    with pytest.raises(ParameterError, match="'spec.lr_warm_up_steps'"):
        train_snapshots(tiny_cache, 1, replace(SPEC, lr_warm_up_steps=2), [128], lambda s: tmp_path / "x")
