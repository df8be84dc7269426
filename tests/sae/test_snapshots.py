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


class _Stop(Exception):
    pass


def test_interrupted_run_resumes_bit_equal(tiny_cache, tmp_path):
    """A run stopped mid-way and started again resumes from its checkpoint (it does not begin at token 0) and ends
    with the same weights, records' curves and snapshots as an uninterrupted run."""
    budgets = [512, 2048]
    ref = train_snapshots(tiny_cache, 1, SPEC, budgets, lambda s: tmp_path / "ref" / f"t{s.n_tokens}")
    seen: list[int] = []

    def stop_at_1280(n: int) -> None:
        seen.append(n)
        if sum(seen) == 1280:  # during step 10: snapshot 512 saved, the last checkpoint after step 9
            raise _Stop

    def out(s):
        return tmp_path / "run" / f"t{s.n_tokens}"

    with pytest.raises(_Stop):
        train_snapshots(tiny_cache, 1, SPEC, budgets, out, stop_at_1280, checkpoint_s=0.0)
    assert (tmp_path / "run" / "t2048.resume.pt").exists()
    seen.clear()
    got = train_snapshots(tiny_cache, 1, SPEC, budgets, out, seen.append, checkpoint_s=0.0)
    assert seen[0] == 1152 and sum(seen) == 2048  # picked up at the checkpoint, not at token 0
    assert not (tmp_path / "run" / "t2048.resume.pt").exists()  # a finished run leaves no checkpoint
    for b in budgets:
        a, r = load_sae(got[b]), load_sae(ref[b])
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            assert torch.equal(getattr(a, name).detach(), getattr(r, name).detach()), (b, name)
        ca, cr = load_record(got[b])["loss_curve"], load_record(ref[b])["loss_curve"]
        assert [p["fvu"] for p in ca] == [p["fvu"] for p in cr]


def test_checkpoint_of_other_parameters_or_torn_is_not_used(tiny_cache, tmp_path):
    """A checkpoint written for another spec, or one that cannot be read, is ignored: the run starts at token 0."""
    budgets = [1024]

    def out(s):
        return tmp_path / "run" / f"t{s.n_tokens}"

    so_far: list[int] = []

    def stop_at_384(n: int) -> None:
        so_far.append(n)
        if sum(so_far) == 384:
            raise _Stop

    with pytest.raises(_Stop):
        train_snapshots(tiny_cache, 1, replace(SPEC, k=5), [2048], out, stop_at_384, checkpoint_s=0.0)
    # the k=5 run's checkpoint sits under t2048; move it where the k=6 run of budget 1024 would look
    (tmp_path / "run" / "t2048.resume.pt").rename(tmp_path / "run" / "t1024.resume.pt")
    seen: list[int] = []
    train_snapshots(tiny_cache, 1, SPEC, budgets, out, seen.append, checkpoint_s=0.0)
    assert seen[0] == 128 and sum(seen) == 1024  # from token 0
    (tmp_path / "run" / "t4096.resume.pt").write_bytes(b"torn")
    seen.clear()
    with pytest.warns(UserWarning, match="unreadable training checkpoint"):
        train_snapshots(tiny_cache, 1, SPEC, [4096], out, seen.append, checkpoint_s=0.0)
    assert seen[0] == 128 and sum(seen) == 4096
