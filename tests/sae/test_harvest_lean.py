"""The lean harvest forward (rsae_utils.sae.fastfwd): equal to transformer-lens's, keyed apart, resumable."""

from __future__ import annotations

import pytest
import torch
from _tiny_model import tiny_model

from rsae_utils.errors import ParameterError
from rsae_utils.sae.cache import TL_FORWARD, cache_key, hook_name, open_cache
from rsae_utils.sae.fastfwd import lean_layers, lean_logits, lean_ok, pack_blocks
from rsae_utils.sae.harvest import harvest, harvest_forward, hooked_layers, planned_forward, run_layers
from rsae_utils.sae.pipeline import SAEPipeline
from rsae_utils.sae.topk import bf16_is_fast
from rsae_utils.subject.variants import VARIANTS

LAYERS = [0, 1, 3]
META = {"model": "tiny-random", "variant": "trained", "seed": 42, "corpus_sha256": "abc"}
# float32 lean vs transformer-lens: same maths, other summation order (fused GEMMs, SDPA); measured ~5e-7 relative.
ATOL, RTOL = 1e-5, 1e-5


@pytest.fixture(scope="module")
def loaded():
    from rsae_utils.subject.models import load_model

    return load_model("tiny-random")


def _variant(loaded, variant):
    from rsae_utils.subject.rerandomize import make_variant

    return make_variant(loaded, variant, seed=42)[0]


def _windows(n=20, ctx=24, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {"train": torch.randint(0, 5000, (n, ctx), generator=gen), "test": torch.randint(0, 5000, (4, ctx))}


@pytest.mark.parametrize("variant", VARIANTS)
def test_lean_equals_transformer_lens_on_every_variant(loaded, variant):
    model = _variant(loaded, variant)
    assert lean_ok(model) and harvest_forward(model) == "lean-float32"
    toks = _windows()["train"]
    noise = getattr(model, "rsae_embedding_noise", None)
    if noise is not None:
        noise.reset()  # the control's noise: both forwards must draw the same sequence
    ref = hooked_layers(model, toks, LAYERS, 8)
    if noise is not None:
        noise.reset()
    new = run_layers(model, toks, LAYERS, 8)
    for layer in LAYERS:
        torch.testing.assert_close(new[layer], ref[layer], atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("start", [1, 2, 3])
def test_lean_logits_resume_like_transformer_lens(loaded, start):
    """The spliced metrics' resumed forward: the same logits as ``model(x, start_at_layer=start)``."""
    model = _variant(loaded, "rerandomized_incl_emb")
    gen = torch.Generator().manual_seed(start)
    x = torch.randn(3, 24, model.cfg.d_model, generator=gen) * 2
    ref = model(x, start_at_layer=start, return_type="logits")
    got = lean_logits(model, x, start, pack_blocks(model, model.cfg.n_layers))
    assert got.shape == ref.shape == (3, 24, model.cfg.d_vocab)
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(got, lean_logits(model, x, start - 1), atol=1e-3)  # the start block matters


def test_batch_size_does_not_change_the_lean_forward(loaded):
    model, toks = _variant(loaded, "trained"), _windows()["train"]
    a, b = lean_layers(model, toks, LAYERS, 3), lean_layers(model, toks, LAYERS, 20)
    for layer in LAYERS:
        torch.testing.assert_close(a[layer], b[layer], atol=1e-6, rtol=1e-6)


def test_bfloat16_is_close_but_not_equal(loaded):
    model, toks = _variant(loaded, "trained"), _windows()["train"]
    ref = lean_layers(model, toks, LAYERS, 8)
    bf = lean_layers(model, toks, LAYERS, 8, "bfloat16")
    for layer in LAYERS:
        err = float((bf[layer] - ref[layer]).norm() / ref[layer].norm())
        assert 0 < err < 3e-2, (layer, err)  # measured ~1e-2 here, 2e-3..7e-3 on SmolLM2-135M


def test_models_the_lean_forward_cannot_reproduce_keep_transformer_lens(loaded):
    assert not lean_ok(tiny_model())  # no original_architecture: not known to be Llama-style
    model = _variant(loaded, "trained")
    model.blocks[1].register_forward_hook(lambda *_: None)  # a hook the lean forward would never call
    assert harvest_forward(model) == TL_FORWARD
    with pytest.raises(ParameterError, match="'float32' for this model"):
        harvest_forward(model, "bfloat16")
    with pytest.raises(ParameterError, match="one of 'float32', 'bfloat16'; got 'float16'"):
        harvest_forward(_variant(loaded, "trained"), "float16")


def test_forward_enters_the_cache_key_and_manifest(loaded, tmp_path):
    w = _windows()
    k_tl = cache_key(META, LAYERS, w, "float32", 64)
    assert cache_key(META, LAYERS, w, "float32", 64, TL_FORWARD) == k_tl  # transformer-lens caches keep their keys
    keys = {cache_key(META, LAYERS, w, "float32", 64, f) for f in (TL_FORWARD, "lean-float32", "lean-bfloat16")}
    assert len(keys) == 3
    model = _variant(loaded, "trained")
    c32 = harvest(model, w, LAYERS, tmp_path / "f32", META, batch_size=8, shard_windows=8)
    cbf = harvest(model, w, LAYERS, tmp_path / "bf16", META, batch_size=8, shard_windows=8, harvest_dtype="bfloat16")
    assert (c32.manifest["forward"], cbf.manifest["forward"]) == ("lean-float32", "lean-bfloat16")
    assert c32.manifest["key"] == cache_key(META, LAYERS, w, "float32", 8, "lean-float32") != cbf.manifest["key"]
    ref = hooked_layers(model, w["test"], LAYERS, 8)
    torch.testing.assert_close(open_cache(tmp_path / "f32").acts(3, "test"), ref[3], atol=ATOL, rtol=RTOL)


def test_planned_forward_matches_the_model_and_the_parameter_check(loaded):
    from rsae_utils.params.nb03_sae import _LEAN_MODELS

    assert planned_forward("tiny-random", "cpu") == harvest_forward(_variant(loaded, "trained"))
    assert all(planned_forward(m, "cpu", "bfloat16") == "lean-bfloat16" for m in _LEAN_MODELS)
    assert planned_forward("pythia-70m", "cpu") == planned_forward("tiny-random", "cuda") == TL_FORWARD


@pytest.mark.parametrize("variant", ["control", "trained"])
def test_interrupted_lean_harvest_resumes_bit_identical(loaded, tmp_path, variant):
    w = _windows(n=28)
    meta = {**META, "variant": variant}
    full = harvest(_variant(loaded, variant), w, LAYERS, tmp_path / "full", meta, batch_size=4, shard_windows=8)
    model = _variant(loaded, variant)  # fresh noise stream: the shards' own seeds must make it irrelevant
    part = harvest(model, w, LAYERS, tmp_path / "part", meta, batch_size=4, shard_windows=8, max_shards=2)
    assert not part.manifest["complete"] and len(part.manifest["shards"]) == 2
    (tmp_path / "part" / part.manifest["shards"][1]["file"]).write_bytes(b"damaged")
    done = harvest(_variant(loaded, variant), w, LAYERS, tmp_path / "part", meta, batch_size=4, shard_windows=8)
    assert done.manifest["complete"] and done.manifest["key"] == full.manifest["key"]
    assert [s["sha256"] for s in done.manifest["shards"]] == [s["sha256"] for s in full.manifest["shards"]]
    assert [s["file"] for s in done.manifest["shards"]] == [s["file"] for s in full.manifest["shards"]]
    assert open_cache(tmp_path / "part").verify() == []
    got = open_cache(tmp_path / "part").acts(1, "train")
    assert got.shape == (28, 24, 64) and torch.equal(got, full.acts(1, "train"))
    assert hook_name(1) in done.manifest["hook_names"]


def test_harvest_dtype_parameter_of_notebook_03():
    from rsae_utils.params.core import resolve

    assert resolve("03_sae_training", "default", {"corpus": "site-packages"})["harvest_dtype"] == "auto"
    assert resolve("03_sae_training", "smoke")["harvest_dtype"] == "float32"
    # "auto" never asks a model without the lean forward for bfloat16
    pipe = SAEPipeline(resolve("03_sae_training", "smoke", {"harvest_dtype": "auto", "model": "pythia-70m"}))
    assert pipe.harvest_dtype == "float32"
    auto = SAEPipeline(resolve("03_sae_training", "smoke", {"harvest_dtype": "auto"})).harvest_dtype
    assert auto == ("bfloat16" if bf16_is_fast("cpu") else "float32")
    with pytest.raises(ParameterError, match="'float32', 'bfloat16', 'auto'"):
        resolve("03_sae_training", "smoke", {"harvest_dtype": "float16"})
    with pytest.raises(ParameterError, match="harvest_dtype"):
        resolve("03_sae_training", "smoke", {"harvest_dtype": "bfloat16", "model": "pythia-70m"})
