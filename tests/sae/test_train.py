"""SAE training from the cache: TopK and ReLU SAEs learn, L0 == k, same seed -> same weights, reuse on rerun."""

from __future__ import annotations

import pytest
import torch
from _tiny_model import tiny_model, tiny_windows
from sae_lens import SAE
from safetensors.torch import load_file

from rsae_utils.sae.harvest import harvest
from rsae_utils.sae.metrics import reconstruction_metrics
from rsae_utils.sae.train import SAESpec, load_record, load_sae, train_sae

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
    from rsae_utils.sae.saelens import make_training_sae

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


# --------------------------------------------------------------------------------------------------------------
# Streamed activations (paper scale: nothing cached) and the lockstep multi-layer trainer
# --------------------------------------------------------------------------------------------------------------
def test_stream_yields_the_models_activations_in_a_seeded_order():
    from rsae_utils.sae.cache import hook_name
    from rsae_utils.sae.harvest import run_layers, stream_activations

    model, toks = tiny_model(), tiny_windows(n_train=24, n_test=1, ctx=16)["train"]
    exclude = (int(toks[0, 0]),)  # a token id that occurs: its positions must never come out
    it = stream_activations(model, toks, [0, 2], 64, harvest_batch=4, seed=5, exclude_tokens=exclude)
    batches = [next(it) for _ in range(12)]  # 768 rows: past one epoch (384 tokens)
    assert all(set(b) == {hook_name(0), hook_name(2)} and b[hook_name(2)].shape == (64, 32) for b in batches)
    ref = run_layers(model, toks, [0, 2], 8)
    keep = toks.reshape(-1) != exclude[0]
    pool = {layer: ref[layer].reshape(-1, 32)[keep] for layer in (0, 2)}
    for b in batches[:2]:
        # every streamed row is a real (kept) position, and the two layers' rows belong to the same positions
        d0 = torch.cdist(b[hook_name(0)], pool[0], compute_mode="donot_use_mm_for_euclid_dist").min(dim=1)
        assert d0.values.max() < 1e-4
        assert torch.allclose(b[hook_name(2)], pool[2][d0.indices], atol=1e-4)
    again = stream_activations(model, toks, [0, 2], 64, harvest_batch=4, seed=5, exclude_tokens=exclude)
    assert all(torch.equal(next(again)[hook_name(2)], b[hook_name(2)]) for b in batches)
    other = next(stream_activations(model, toks, [0, 2], 64, harvest_batch=4, seed=6, exclude_tokens=exclude))
    assert not torch.equal(other[hook_name(2)], batches[0][hook_name(2)])


def test_stream_rejects_bad_input_before_running():
    from rsae_utils.errors import ParameterError
    from rsae_utils.sae.harvest import stream_activations

    toks = tiny_windows(n_train=4, n_test=1, ctx=8)["train"]
    with pytest.raises(ParameterError, match="'buffer_tokens'"):
        next(stream_activations(tiny_model(), toks, [1], 64, buffer_tokens=100))
    with pytest.raises(ParameterError, match="'exclude_tokens'"):
        next(stream_activations(tiny_model(), toks, [1], 8, exclude_tokens=toks.unique().tolist()))


STREAM = SAESpec(architecture="topk", expansion=4, k=6, n_tokens=6144, batch_size=128, lr=4e-3, seed=3)


def test_streaming_trains_every_layer_reuses_and_retrains_only_what_is_missing(cache, tmp_path):
    from rsae_utils.sae.train import train_saes_streaming

    model, toks = tiny_model(), tiny_windows(n_train=64, n_test=16, ctx=16)
    dirs = {layer: tmp_path / f"L{layer}" for layer in (1, 3)}
    calls = []

    def model_fn():
        calls.append(1)
        return model

    out = train_saes_streaming(model_fn, toks["train"], [1, 3], STREAM, dirs, META, d_model=32, harvest_batch=8)
    assert out == dirs and len(calls) == 1
    for layer in (1, 3):
        rec = load_record(dirs[layer])
        assert rec["tokens_trained"] == 6144 and rec["layers_trained_together"] == [1, 3] and rec["source"] == "stream"
        sae = load_sae(dirs[layer])
        assert sae.cfg.metadata.hook_name == f"blocks.{layer}.hook_resid_post"
    # layer 1 learnt the held-out activations of the cache (the same model and test windows): TopK keeps k
    m = reconstruction_metrics(load_sae(dirs[1]), cache.acts(1, "test"))
    assert m["l0"] == pytest.approx(6.0) and m["fvu"] < 0.6
    stamp = (dirs[3] / "sae_weights.safetensors").stat().st_mtime_ns
    # a rerun loads no model and trains nothing; a deleted layer alone is retrained
    train_saes_streaming(model_fn, toks["train"], [1, 3], STREAM, dirs, META, d_model=32, harvest_batch=8)
    assert len(calls) == 1
    w1 = load_file(str(dirs[1] / "sae_weights.safetensors"))
    import shutil

    shutil.rmtree(dirs[1])
    train_saes_streaming(model_fn, toks["train"], [1, 3], STREAM, dirs, META, d_model=32, harvest_batch=8)
    assert len(calls) == 2 and (dirs[3] / "sae_weights.safetensors").stat().st_mtime_ns == stamp
    assert load_record(dirs[1])["layers_trained_together"] == [1]
    # alone or beside layer 3, layer 1 sees the same positions in the same order from the same init: same weights
    w1_alone = load_file(str(dirs[1] / "sae_weights.safetensors"))
    assert w1.keys() == w1_alone.keys() and all(torch.allclose(w1[k], w1_alone[k], atol=1e-6) for k in w1)


FAST = SAESpec(architecture="topk", trainer="fast", expansion=4, k=6, n_tokens=8192, batch_size=128, lr=4e-3, seed=3)


def test_fast_trainer_equals_train_topk_on_the_same_batches_and_loads_in_sae_lens(cache, tmp_path):
    """trainer='fast' is train_topk on the cache's batches (same seed, same order): identical weights, saved in
    sae-lens's format; it learns (FVU on held-out data well below an untrained SAE's), and L0 == k."""
    from itertools import islice

    from rsae_utils.sae.topk import to_sae_lens, train_topk

    path = train_sae(cache, 1, FAST, tmp_path / "fast")
    sae = load_sae(path)
    batches = cache.iter_batches(1, 128, seed=3)
    ref = to_sae_lens(
        train_topk(
            islice(batches, 8192 // 128),
            32,
            128,
            6,
            lr=4e-3,
            seed=3,
            dead_tokens_threshold=FAST.dead_tokens(32),
        )
    )
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(sae, name).detach(), getattr(ref, name).detach()), name
    rec = load_record(path)
    assert rec["tokens_trained"] == 8192 and rec["steps"] == 64 and rec["trainer"].startswith("rsae_utils.sae.topk")
    assert rec["final"]["fvu"] < 0.7 * rec["loss_curve"][0]["fvu"]  # the first point is at step 10
    m = reconstruction_metrics(sae, cache.acts(1, "test"))
    assert m["l0"] == pytest.approx(6.0) and m["fvu"] < 0.6


def test_trainer_choice_is_checked_and_listed_once():
    from rsae_utils.params import nb03_sae
    from rsae_utils.sae.spec import TRAINERS
    from rsae_utils.sae.trainers import TRAINER_CODE

    assert nb03_sae.TRAINERS is TRAINERS and set(TRAINER_CODE) == set(TRAINERS)
    assert all(TRAINER_CODE[name].kind is kind for name, kind in TRAINERS.items())
    with pytest.raises(ValueError, match="'trainer'.*TopK"):
        SAESpec(architecture="relu", trainer="fast").validate()
    with pytest.raises(ValueError, match="'trainer' must be one of"):
        SAESpec(trainer="sparsify").validate()
