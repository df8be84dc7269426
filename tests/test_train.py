"""SAE training from the cache: TopK and ReLU SAEs learn, L0 == k, same seed -> same weights, reuse on rerun."""

from __future__ import annotations

import pytest
import torch
from _tiny_model import tiny_model, tiny_windows
from sae_lens import SAE
from safetensors.torch import load_file

from rsae_utils.cache import harvest
from rsae_utils.metrics import reconstruction_metrics
from rsae_utils.train import SAESpec, load_record, load_sae, train_sae

META = {"model": "tiny-test", "variant": "trained", "seed": 0, "corpus_sha256": "abc"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    windows = tiny_windows(n_train=64, n_test=16, ctx=16)
    return harvest(tiny_model(), windows, [1], tmp_path_factory.mktemp("cache"), META, batch_size=16)


def _fvu(sae, cache):
    return reconstruction_metrics(sae, cache.acts(1, "test"))["fvu"]


TOPK = SAESpec(architecture="topk", expansion=4, k=6, n_tokens=8192, batch_size=128, lr=4e-3, seed=3)


def test_topk_trains_reduces_fvu_and_l0_is_k(cache, tmp_path):
    path = train_sae(cache, 1, TOPK, tmp_path / "sae")
    sae = SAE.load_from_disk(str(path))
    assert sae.cfg.d_sae == 4 * 32 and sae.cfg.metadata.hook_name == "blocks.1.hook_resid_post"
    rec = load_record(path)
    assert rec["tokens_trained"] == 8192 and rec["seed"] == 3 and rec["layer"] == 1
    assert rec["loss_curve"][-1]["mse_loss"] < 0.5 * rec["loss_curve"][0]["mse_loss"]
    m = reconstruction_metrics(sae, cache.acts(1, "test"))
    assert m["l0"] == pytest.approx(6.0)
    # an untrained SAE of the same spec, on the same held-out data, reconstructs much worse
    from rsae_utils.train import make_training_sae

    torch.manual_seed(3)
    untrained = make_training_sae(TOPK, 32)
    assert m["fvu"] < 0.6 and m["fvu"] < 0.7 * _fvu(untrained, cache)


def test_same_seed_same_weights_other_seed_differs(cache, tmp_path):
    a = load_file(str(train_sae(cache, 1, TOPK, tmp_path / "a") / "sae_weights.safetensors"))
    b = load_file(str(train_sae(cache, 1, TOPK, tmp_path / "b") / "sae_weights.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = SAESpec(**{**TOPK.__dict__, "seed": 4})
    c = load_file(str(train_sae(cache, 1, other, tmp_path / "c") / "sae_weights.safetensors"))
    assert not torch.equal(a["W_enc"], c["W_enc"])


def test_rerun_reuses_and_changed_params_retrain(cache, tmp_path):
    path = train_sae(cache, 1, TOPK, tmp_path / "s")
    stamp = (path / "sae_weights.safetensors").stat().st_mtime_ns
    assert train_sae(cache, 1, TOPK, tmp_path / "s") == path
    assert (path / "sae_weights.safetensors").stat().st_mtime_ns == stamp
    with pytest.warns(UserWarning, match="rebuilding"):
        train_sae(cache, 1, SAESpec(**{**TOPK.__dict__, "n_tokens": 4096}), tmp_path / "s")
    assert load_record(path)["tokens_trained"] == 4096


def test_relu_sae_trains(cache, tmp_path):
    spec = SAESpec(architecture="relu", expansion=4, l1_coefficient=0.5, n_tokens=8192, batch_size=128, lr=4e-3)
    path = train_sae(cache, 1, spec, tmp_path / "relu")
    sae = load_sae(path)
    assert sae.cfg.architecture() == "standard"
    m = reconstruction_metrics(sae, cache.acts(1, "test"))
    assert m["fvu"] < 0.6 and 0 < m["l0"] < 4 * 32


def test_bad_k_rejected(cache, tmp_path):
    with pytest.raises(ValueError, match="'k'"):
        train_sae(cache, 1, SAESpec(expansion=1, k=32), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
