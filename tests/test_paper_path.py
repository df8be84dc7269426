"""The paper profile's loading code without a network: a tiny Pythia-layout checkpoint in a local hub cache (read
with HF_HUB_OFFLINE=1 through the same transformer-lens call that loads pythia-70m), the step0 revision reaching
the loader, and the RedPajama samples' two row layouts with datasets-style split slices, streamed from local files
(``RSAE_HF_DATASETS_DIR``) through the same datasets code that streams them from the hub."""

from __future__ import annotations

import json

import huggingface_hub.constants as hf_constants
import pytest
import torch
from _tiny_pythia import write_tiny_pythia
from transformers import GPTNeoXForCausalLM

from rsae_utils.errors import ModelUnavailableError, ParameterError
from rsae_utils.params import resolve
from rsae_utils.sae.pipeline import SAEPipeline
from rsae_utils.subject.corpus import load_corpus
from rsae_utils.subject.hf_text import MIRROR_ENV, parse_split, slice_bounds
from rsae_utils.subject.models import load_model
from rsae_utils.subject.rerandomize import STEP0_CHECKPOINT, make_variant

WORDS = ["river", "stone", "light", "quiet", "morning", "garden", "window", "letter", "paper", "music", "orange"]


def documents(n: int = 100) -> list[str]:
    """n distinct documents of a few sentences each ("document 7: ..."), so slices can be told apart."""
    return [f"document {i}: " + " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(60)) + "." for i in range(n)]


def write_mirror(root, docs: list[str]):
    """The two RedPajama samples' layouts under a local mirror: rpj-v2-sample rows carry ``raw_content`` (plus
    metadata), the togethercomputer sample's carry ``text``."""
    v2 = root / "EleutherAI" / "rpj-v2-sample" / "sample"
    v1 = root / "togethercomputer" / "RedPajama-Data-1T-Sample"
    for folder, field in ((v2, "raw_content"), (v1, "text")):
        folder.mkdir(parents=True)
        rows = [{field: d, "doc_id": i, "meta": json.dumps({"source": "test"})} for i, d in enumerate(docs)]
        (folder / "part-00000.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A hub cache holding the tiny Pythia checkpoint; the hub treated as offline (in this process and in kernels)."""
    cache = tmp_path / "hub"
    snaps = write_tiny_pythia(cache, documents())
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))  # read at import time by huggingface_hub
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    return snaps


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    root = write_mirror(tmp_path / "datasets", documents())
    monkeypatch.setenv(MIRROR_ENV, str(root))
    return root


def _embedding(snapshot) -> torch.Tensor:
    return GPTNeoXForCausalLM.from_pretrained(snapshot).gpt_neox.embed_in.weight.detach()


def test_tiny_pythia_loads_offline_and_step0_is_its_own_snapshot(hub_cache):
    main = load_model("pythia-70m")
    assert main.family == "pythia" and main.has_step0_checkpoint and (main.n_layers, main.d_model) == (2, 32)
    assert main.source == "hub:EleutherAI/pythia-70m@main"
    assert torch.equal(main.model.embed.W_E, _embedding(hub_cache["main"]))
    step0 = load_model("pythia-70m", revision="step0")
    assert step0.revision == "step0" and step0.source.endswith("@step0")
    assert torch.equal(step0.model.embed.W_E, _embedding(hub_cache["step0"]))
    assert not torch.equal(step0.model.embed.W_E, main.model.embed.W_E)
    # the step-0 variant of the trained model is Pythia's published step0 checkpoint, not an initializer
    model, record = make_variant(main, "step0", seed=42)
    assert torch.equal(model.embed.W_E, step0.model.embed.W_E) and record["step0_source"] == STEP0_CHECKPOINT
    # notebook 03's revision parameter reaches the loader
    cfg = resolve("03_sae_training", "smoke", {"model": "pythia-70m", "revision": "step0", "layers": [0, 1]})
    assert torch.equal(SAEPipeline(cfg)._model().model.embed.W_E, step0.model.embed.W_E)
    # a revision that is not cached fails at once, naming it, instead of trying the network
    with pytest.raises(ModelUnavailableError, match="step1000"):
        load_model("pythia-70m", revision="step1000")


def test_split_slices_parse_like_datasets():
    assert parse_split("train[:15%]") == ("train", None, "15%")
    assert parse_split("train[25%:30%]") == ("train", "25%", "30%")
    assert parse_split("validation") == ("validation", None, None)
    assert slice_bounds(None, "15%", 1000) == (0, 150) and slice_bounds("25%", "30%", 1000) == (250, 300)
    assert slice_bounds("10", "20", None) == (10, 20)
    for bad in ("train[:150%]", "train[a:b]", "train[:15%", ""):
        with pytest.raises(ParameterError, match="split"):
            parse_split(bad)
    with pytest.raises(ParameterError, match="split"):
        resolve("03_sae_training", "smoke", {"corpus": "hf:EleutherAI/rpj-v2-sample:train[::2]"})


@pytest.mark.parametrize("name", ["EleutherAI/rpj-v2-sample", "togethercomputer/RedPajama-Data-1T-Sample"])
def test_redpajama_samples_stream_from_a_local_mirror_with_disjoint_slices(mirror, name):
    docs = documents()
    train = load_corpus(f"hf:{name}:train[:15%]")
    held_out = load_corpus(f"hf:{name}:train[25%:30%]")
    assert train.texts == docs[:15] and held_out.texts == docs[25:30]  # stream order, both text fields
    assert train.info["rows"] == [0, 15] and "counted by streaming" in train.info["loaded_as"]
    capped = load_corpus(f"hf:{name}:train[:10]", max_chars=len(docs[0]) + 1)
    assert capped.info["rows_read"] == 2 and capped.texts == docs[:1]  # max_chars stops the stream
    assert load_corpus(f"hf:{name}").n_docs == len(docs)


def test_missing_mirror_and_raw_content_in_dir_corpora(mirror, tmp_path, monkeypatch):
    with pytest.raises(ParameterError, match=MIRROR_ENV):
        load_corpus("hf:EleutherAI/no-such-sample")
    # a local folder of rpj-v2-style rows (raw_content) is a dir: corpus too
    folder = mirror / "EleutherAI" / "rpj-v2-sample" / "sample"
    assert load_corpus(f"dir:{folder}").texts == documents()
    monkeypatch.delenv(MIRROR_ENV)
    with pytest.raises(ParameterError, match="not reachable"):
        load_corpus("hf:EleutherAI/rpj-v2-sample:train[:15%]")
