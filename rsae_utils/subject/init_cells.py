"""Architecture x initializer at initialization, the rest held fixed (notebook 06, issue 22's part 1).

Four cells and a depth cell, all with SmolLM2's vocabulary (so they read notebook 03's token windows) and its
width (576, 9 heads of 64):

==========================  ==================================================================================
``llama-normal``            SmolLM2's own architecture (pre-norm Llama: RMSNorm, gated SiLU MLP of 1536, full
                            rotary, 30 layers) under transformers' Llama init: every matrix N(0, 1/24), gains 1.
                            This is notebook 03's step-0 stand-in, drawn the same way.
``llama-pythia``            the same architecture under GPT-NeoX's ``small_init`` N(0, sqrt(2 / 5d)) = 0.026 for
                            every matrix and the embedding, ``wang_init`` N(0, 2 / (L sqrt d)) = 0.0028 for each
                            block's two output projections (o_proj, down_proj), gains 1
``neox-normal``             GPT-NeoX of the same width and depth (parallel attention and MLP, LayerNorm with
                            biases, GELU MLP of 2304 = the Llama MLP's parameter count, rotary on a quarter of each
                            head), every matrix N(0, 1/24), gains 1, biases 0
``neox-pythia``             that GPT-NeoX under small_init + wang_init (Pythia's step-0 rule)
``neox-pythia-6``           the same at 6 layers (Pythia-70m's depth): depth, with architecture and rule fixed
==========================  ==================================================================================

So a row and a column of the 2x2 differ in one thing: the architecture (with its own parts) or the initializer.
Layers are matched by their fraction of the depth (:func:`matched_layers`).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from rsae_utils.subject.models import hooked_from_llama_hf
from rsae_utils.subject.neox_init import neox_at_init

NORMAL_STD = 1 / 24  # SmolLM2's initializer_range (= 1 / sqrt(d_model))
CELLS: dict[str, dict[str, Any]] = {
    "llama-normal": {"arch": "llama", "init": "normal", "n_layers": None},
    "llama-pythia": {"arch": "llama", "init": "pythia", "n_layers": None},
    "neox-normal": {"arch": "neox", "init": "normal", "n_layers": None},
    "neox-pythia": {"arch": "neox", "init": "pythia", "n_layers": None},
    "neox-pythia-6": {"arch": "neox", "init": "pythia", "n_layers": 6},
}
LABELS = {
    "llama-normal": "Llama (SmolLM2), normal init",
    "llama-pythia": "Llama (SmolLM2), Pythia init",
    "neox-normal": "GPT-NeoX, normal init",
    "neox-pythia": "GPT-NeoX, Pythia init",
    "neox-pythia-6": "GPT-NeoX 6 layers, Pythia init",
}
LLAMA_OUTPUTS = ("o_proj.weight", "down_proj.weight")


def check_cells(names: list[str]) -> None:
    bad = [n for n in names if n not in CELLS]
    if bad:
        raise ValueError(f"init cells must be among {list(CELLS)}; got {bad}")


def matched_layers(layers: list[int], n_from: int, n_to: int) -> list[int]:
    """``layers`` of an ``n_from``-layer model at the same fraction of the depth of an ``n_to``-layer one."""
    return sorted({min(n_to - 1, int(round(x * n_to / n_from))) for x in layers})


@torch.no_grad()
def _pythia_llama_(model: Any, gen: torch.Generator) -> None:
    d, n_layers = model.config.hidden_size, model.config.num_hidden_layers
    small, wang = math.sqrt(2.0 / (5 * d)), 2.0 / (n_layers * math.sqrt(d))
    for name, p in model.named_parameters():
        if "norm" in name:
            p.fill_(1.0)
        elif name.endswith("bias"):
            p.zero_()
        else:
            p.copy_(torch.randn(p.shape, generator=gen) * (wang if name.endswith(LLAMA_OUTPUTS) else small))
    if model.config.tie_word_embeddings:
        model.tie_weights()


def llama_at_init(hf_config: Any, init: str, seed: int, n_ctx: int, n_layers: int | None = None) -> Any:
    """A HookedTransformer of ``hf_config``'s Llama (``n_layers`` deep when given) under ``init``."""
    cfg = copy.deepcopy(hf_config)
    cfg.initializer_range = NORMAL_STD
    if n_layers:
        cfg.num_hidden_layers = int(n_layers)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        hf = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    if init == "pythia":
        _pythia_llama_(hf, torch.Generator().manual_seed(int(seed)))
    return hooked_from_llama_hf(hf, n_ctx=n_ctx)


def init_cell_model(name: str, hf_config: Any, vocab_size: int, seed: int, n_ctx: int) -> tuple[Any, dict[str, Any]]:
    """(HookedTransformer, record) of cell ``name`` (:data:`CELLS`) at ``hf_config``'s width and depth (the cell's
    own depth when it has one)."""
    check_cells([name])
    cell = CELLS[name]
    n_layers = cell["n_layers"] or int(hf_config.num_hidden_layers)
    d = int(hf_config.hidden_size)
    if cell["arch"] == "llama":
        model = llama_at_init(hf_config, cell["init"], seed, n_ctx, n_layers)
    else:
        shape = {
            "num_hidden_layers": n_layers,
            "hidden_size": d,
            "num_attention_heads": int(hf_config.num_attention_heads),
            "intermediate_size": 4 * d,
        }
        init = "pythia" if cell["init"] == "pythia" else "hf"
        model, _ = neox_at_init(vocab_size, seed, init, n_ctx=n_ctx, shape=shape, initializer_range=NORMAL_STD)
    record = {"cell": name, **cell, "n_layers": n_layers, "d_model": d, "seed": int(seed), "label": LABELS[name]}
    return model.eval(), record


def llama_config_of(loaded: Any) -> Any:
    """The transformers ``LlamaConfig`` of a loaded Llama-style model: its own (SmolLM2), else one built from the
    transformer-lens config (tiny-random)."""
    if getattr(loaded, "hf_config", None) is not None:
        return loaded.hf_config
    c = loaded.model.cfg
    return LlamaConfig(
        vocab_size=int(c.d_vocab),
        hidden_size=int(c.d_model),
        intermediate_size=int(c.d_mlp),
        num_hidden_layers=int(c.n_layers),
        num_attention_heads=int(c.n_heads),
        num_key_value_heads=int(c.n_key_value_heads or c.n_heads),
        head_dim=int(c.d_head),
        max_position_embeddings=int(c.n_ctx),
        rms_norm_eps=float(c.eps),
        tie_word_embeddings=True,
        hidden_act="silu",
    )
