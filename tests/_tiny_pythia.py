"""A tiny GPT-NeoX checkpoint laid out like Pythia on the Hugging Face hub, written into a local hub cache.

``write_tiny_pythia(cache)`` writes ``models--EleutherAI--pythia-70m`` under ``cache`` (what ``HF_HUB_CACHE``
points at): ``refs/main`` and ``refs/step0`` naming two snapshots, each with ``config.json`` (Pythia's config
layout: GPTNeoXForCausalLM, parallel residual, rotary_pct 0.25, untied embeddings) and ``model.safetensors`` of
random weights drawn with different seeds, and the tokenizer in ``main`` (a byte-level BPE with Pythia's
``<|endoftext|>`` = 0, trained on a few sentences). With ``HF_HUB_OFFLINE=1`` transformers and transformer-lens load
it through exactly the code that loads the real model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

REPO = "EleutherAI/pythia-70m"
SHAPE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}
SEEDS = {"main": 1, "step0": 2}


def _tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|padding|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|padding|>",
    )


def write_tiny_pythia(cache: Path, texts: list[str], vocab_size: int = 400, repo: str = REPO) -> dict[str, Path]:
    """Write the tiny checkpoint into hub cache ``cache``; returns {revision: snapshot folder}."""
    root = Path(cache) / f"models--{repo.replace('/', '--')}"
    tokenizer = _tokenizer(texts, vocab_size)
    config = GPTNeoXConfig(
        **SHAPE,
        vocab_size=len(tokenizer),
        max_position_embeddings=2048,
        rotary_pct=0.25,
        rotary_emb_base=10000,
        use_parallel_residual=True,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
        layer_norm_eps=1e-5,
        hidden_act="gelu",
    )
    config.architectures = ["GPTNeoXForCausalLM"]
    out = {}
    for revision, seed in SEEDS.items():
        commit = hashlib.sha1(f"{repo}@{revision}".encode()).hexdigest()
        snap = root / "snapshots" / commit
        torch.manual_seed(seed)
        model = GPTNeoXForCausalLM(config)
        with torch.no_grad():  # layer-norm gains with some spread, so re-randomizing them is visible
            for name, p in model.named_parameters():
                if "layernorm" in name or "final_layer_norm" in name:
                    p.add_(0.1 * torch.randn_like(p))
        model.save_pretrained(snap)
        if revision == "main":
            tokenizer.save_pretrained(snap)
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / revision).write_text(commit)
        out[revision] = snap
    return out
