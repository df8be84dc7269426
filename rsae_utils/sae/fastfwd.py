"""A lean CPU forward of a Llama-style ``HookedTransformer`` that returns the residual stream after chosen blocks.

transformer-lens's forward is general: it transposes and copies every weight matrix on every call, repeats the
grouped key/value heads, builds and applies a causal mask by hand and passes each tensor through hook points.
For harvesting (no hooks but the control variant's embedding noise, no gradients, fixed-length windows) those
costs are a third of a CPU forward. ``lean_layers`` computes the same blocks from the same parameters, packed once
per call (q/k/v in one matrix, gate/in in one), with ``scaled_dot_product_attention`` (causal, grouped heads).
It is used only where ``lean_ok`` says the model is one it reproduces (RMSNorm, rotary, gated MLP, causal; CPU;
no hooks besides ``hook_embed``'s); anything else keeps the transformer-lens forward.

``dtype="bfloat16"`` runs the matrix products in bfloat16 (AMX/AVX-512-BF16 CPUs run them several times
faster; elsewhere slower) while norms, rotary and the residual sums stay float32. On SmolLM2-135M its activations
differ from float32 by 0.3-0.7% relative for the trained model but up to 8% at layer 14 of the re-randomized
variants (benchmarks/bench_harvest.py), which is why it is opt-in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

# Harvest compute dtypes: the matrix-product dtype of the lean forward ("float32": as transformer-lens).
HARVEST_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _hooked(module: Any) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks)


def lean_ok(model: Any) -> bool:
    """True when ``lean_layers`` reproduces ``model``'s residual stream (else use the transformer-lens forward)."""
    cfg = getattr(model, "cfg", None)
    if cfg is None or not hasattr(model, "blocks") or not hasattr(model, "hook_embed"):
        return False
    try:
        if next(model.parameters()).device.type != "cpu" or next(model.parameters()).dtype != torch.float32:
            return False
    except StopIteration:
        return False
    checks = (
        cfg.normalization_type == "RMS",
        cfg.positional_embedding_type == "rotary",
        bool(cfg.gated_mlp),
        cfg.act_fn == "silu",
        getattr(cfg, "rotary_dim", None) == cfg.d_head,
        not getattr(cfg, "parallel_attn_mlp", False),
        not getattr(cfg, "post_embedding_ln", False),
        getattr(cfg, "attention_dir", "causal") == "causal",
        not getattr(cfg, "use_local_attn", False),
        not getattr(cfg, "use_qk_norm", False),
        not getattr(cfg, "use_logn_attn", False),
        not getattr(cfg, "use_dynamic_ntk_rope", False),
        not getattr(cfg, "use_attention_sinks", False),
        getattr(cfg, "clip_qkv", None) is None,
        (getattr(cfg, "attn_scores_soft_cap", -1.0) or -1.0) <= 0,
        not getattr(cfg, "use_normalization_before_and_after", False),
        not getattr(cfg, "attn_only", False),
        cfg.original_architecture in ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"),
    )
    if not all(checks):
        return False
    tok = getattr(model, "tokenizer", None)
    if tok is not None and getattr(tok, "padding_side", "right") == "left":
        return False  # transformer-lens would build a padding mask from the tokens
    # Any hook but the control variant's noise on hook_embed would not run here (the blocks are not called).
    return not any(_hooked(m) for name, m in model.named_modules() if name != "hook_embed")


def _pack(block: Any, dtype: torch.dtype) -> dict[str, Any]:
    """One block's weights as (out, in) matrices for ``F.linear``, q/k/v and gate/in fused (fewer, larger GEMMs)."""
    attn, mlp = block.attn, block.mlp
    w_k = getattr(attn, "_W_K", attn.W_K)  # grouped-query attention keeps the un-repeated kv heads here
    w_v = getattr(attn, "_W_V", attn.W_V)
    b_k = getattr(attn, "_b_K", attn.b_K)
    b_v = getattr(attn, "_b_V", attn.b_V)
    n_heads, d_model, d_head = attn.W_Q.shape
    w_qkv = torch.cat([w.permute(0, 2, 1).reshape(-1, d_model) for w in (attn.W_Q, w_k, w_v)])
    b_qkv = torch.cat([b.reshape(-1) for b in (attn.b_Q, b_k, b_v)])
    w_gi = torch.cat([mlp.W_gate.T, mlp.W_in.T])
    return {
        "ln1": block.ln1.w,
        "eps1": block.ln1.eps,
        "ln2": block.ln2.w,
        "eps2": block.ln2.eps,
        "qkv": w_qkv.to(dtype).contiguous(),
        "b_qkv": b_qkv.to(dtype),
        "o": attn.W_O.reshape(n_heads * d_head, d_model).T.to(dtype).contiguous(),
        "b_o": attn.b_O.to(dtype),
        "gi": w_gi.to(dtype).contiguous(),
        "b_in": mlp.b_in,
        "out": mlp.W_out.T.to(dtype).contiguous(),
        "b_out": mlp.b_out.to(dtype),
        "n_heads": n_heads,
        "n_kv": w_k.shape[0],
        "d_head": d_head,
        "scale": 1.0 / float(attn.attn_scale),
        "cos": attn.rotary_cos,
        "sin": attn.rotary_sin,
    }


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt() * w


def _rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """GPT-NeoX rotary on (batch, heads, pos, d_head): halves swapped, as transformer-lens's non-adjacent pairs."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


def _block(x: torch.Tensor, p: dict[str, Any], dtype: torch.dtype) -> torch.Tensor:
    b, t, _ = x.shape
    h, kv, dh = p["n_heads"], p["n_kv"], p["d_head"]
    qkv = F.linear(_rms(x, p["ln1"], p["eps1"]).to(dtype), p["qkv"], p["b_qkv"]).float()
    q, k, v = qkv.view(b, t, h + 2 * kv, dh).transpose(1, 2).split([h, kv, kv], dim=1)
    cos, sin = p["cos"][:t], p["sin"][:t]
    q, k = _rotary(q, cos, sin), _rotary(k, cos, sin)
    z = F.scaled_dot_product_attention(
        q.to(dtype), k.to(dtype), v.to(dtype), is_causal=True, scale=p["scale"], enable_gqa=kv != h
    )
    x = x + F.linear(z.transpose(1, 2).reshape(b, t, h * dh), p["o"], p["b_o"]).float()
    gate, lin = F.linear(_rms(x, p["ln2"], p["eps2"]).to(dtype), p["gi"]).float().chunk(2, dim=-1)
    mid = F.silu(gate) * lin + p["b_in"]
    return x + F.linear(mid.to(dtype), p["out"], p["b_out"]).float()


@torch.inference_mode()
def pack_blocks(model: Any, n_blocks: int, dtype: str = "float32") -> list[dict[str, Any]]:
    """The first ``n_blocks`` blocks' weights packed for ``lean_layers`` (once per harvest, not per batch)."""
    return [_pack(model.blocks[i], HARVEST_DTYPES[dtype]) for i in range(n_blocks)]


@torch.inference_mode()
def lean_layers(
    model: Any,
    tokens: torch.Tensor,
    layers: Sequence[int],
    batch_size: int,
    dtype: str = "float32",
    packed: list[dict[str, Any]] | None = None,
) -> dict[int, torch.Tensor]:
    """Float32 residual stream after each block of ``layers`` for ``tokens`` (n, ctx), ``batch_size`` windows per
    forward, computed up to the deepest layer only; written straight into preallocated outputs (no concatenation).
    ``packed``: from ``pack_blocks`` with the same dtype (made here when absent). The caller checks ``lean_ok``."""
    t_dtype = HARVEST_DTYPES[dtype]
    layers = sorted({int(x) for x in layers})
    stop = layers[-1] + 1
    packed = packed if packed is not None else pack_blocks(model, stop, dtype)
    n, ctx = tokens.shape
    out = {layer: torch.empty(n, ctx, model.cfg.d_model) for layer in layers}
    for start in range(0, n, batch_size):
        batch = tokens[start : start + batch_size]
        x = model.hook_embed(model.embed(batch)).float()  # runs the control variant's noise hook, as before
        for i, p in enumerate(packed[:stop]):
            x = _block(x, p, t_dtype)
            if i in out:
                out[i][start : start + batch.shape[0]] = x
    return out


@torch.inference_mode()
def lean_logits(
    model: Any, x: torch.Tensor, start_at_layer: int, packed: list[dict[str, Any]] | None = None
) -> torch.Tensor:
    """Logits of ``model`` resumed from the residual stream ``x`` (batch, ctx, d) before block ``start_at_layer``:
    the remaining blocks as in ``lean_layers`` (float32), then the model's own final norm and unembedding.
    ``packed``: from ``pack_blocks(model, n_layers)`` (made here when absent). The caller checks ``lean_ok``."""
    packed = packed if packed is not None else pack_blocks(model, model.cfg.n_layers)
    x = x.float()
    for p in packed[start_at_layer:]:
        x = _block(x, p, torch.float32)
    return model.unembed(model.ln_final(x))
