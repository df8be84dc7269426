"""A prediction from the weights: how a random transformer's residual stream grows, and how much of it is still
the token embedding, from per-tensor means and stds alone (notebook 06, issue 22's part 3).

The model is a mean field over weight draws: every matrix entry is independent with its tensor's mean and std
(exactly what the paper's re-randomization rule draws, and what an initializer draws), so a product ``W x``
scales second moments by ``std(W)^2 * d_in`` and keeps the cosine between two inputs; blocks' writes are
uncorrelated with what they read (their output matrix is a fresh zero-mean draw), so second moments add along the
residual. What is tracked, per layer, in units of the per-coordinate second moment:

* ``Q[t]``: the residual's second moment at position t of a window;
* ``C[t, u]``: the cross moment of positions t != u of the same window (what attention mixes);
* ``M``: the cross moment of two tokens of different windows (the part every token shares: the mean).

Rules (each block reads a normalized copy: RMSNorm gives gain second moment ``E[g^2]``, LayerNorm also removes
the coordinate mean and adds its bias' ``E[b^2]``):

* **attention** at random init: a query's scores over its t+1 keys are ~N(0, s^2) with
  ``s^2 = (std(W_Q)^2 d q + E[b_Q^2]) std(W_K)^2 d (q - c) / attn_scale^2 * d_head``; softmax over lognormal
  weights gives a participation ``P_t = min(1, exp(s^2) / (t + 1))`` (``1 / (t+1)``: uniform averaging, 1: one
  key), so the mixed value's second moment is ``P_t * mean diag + (1 - P_t) * mean off-diagonal`` of the values'
  moments over the prefix, and two queries' outputs share the uniform average's cross moment. The output
  projection then scales by ``std(W_O)^2 * n_heads d_head``.
* **MLP**: pre-activations are Gaussian with the normalized input's moments; ``E[act(z1) act(z2)]`` is computed
  by Gauss-Hermite quadrature (GELU, SiLU, ReLU; a gated MLP multiplies by the linear branch's cross moment).
* the residual adds every block's write (sequential for Llama, both branches from one input for GPT-NeoX's
  parallel residual).

What it leaves out: matrix means (trained matrices' means are ~1e-4 of their stds; their effect is a shared
offset), correlations between a query's and a key's weights, and the embedding rows' structure beyond their
tensor's mean and std (the prediction is of the *re-randomized* or *initialized* model, not of a trained one).
The embedding's share of the residual's variance (``emb_share``) is a lower bound of the token-identity share:
block writes are functions of the token too. ``predict`` takes a ``HookedTransformer``; ``retention_report`` turns
its output into sentences that say which per-tensor statistics keep the token in the residual.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

_QUAD_NODES = 48
_RHO_GRID = 401
ACTS = ("gelu", "gelu_new", "gelu_fast", "silu", "relu")


# --------------------------------------------------------------------------------------------------------------
# Per-tensor statistics
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Moments:
    """A tensor's mean and std over all its entries (the paper's rule redraws with exactly these)."""

    mean: float = 0.0
    std: float = 0.0

    @property
    def second(self) -> float:
        return self.mean**2 + self.std**2


def tensor_moments(t: torch.Tensor | None) -> Moments:
    """Mean and std of every entry of ``t`` (zeros for a missing tensor)."""
    if t is None or t.numel() == 0:
        return Moments()
    x = t.detach().double()
    return Moments(float(x.mean()), float(x.std()) if x.numel() > 1 else 0.0)


def _param(block: Any, *names: str) -> torch.Tensor | None:
    for name in names:
        obj = block
        for part in name.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, torch.Tensor):
            return obj
    return None


def weight_moments(model: Any) -> dict[str, Any]:
    """Per-tensor moments of a transformer-lens ``HookedTransformer`` and the shape facts the prediction needs."""
    cfg = model.cfg
    act = str(cfg.act_fn)
    if act not in ACTS:
        raise ValueError(f"act_fn must be one of {ACTS} for the mean-field prediction; got {act!r}")
    norm = str(cfg.normalization_type or "none")
    blocks = []
    for b in model.blocks:
        blocks.append(
            {
                "ln1_w": tensor_moments(_param(b, "ln1.w")),
                "ln1_b": tensor_moments(_param(b, "ln1.b")),
                "ln2_w": tensor_moments(_param(b, "ln2.w")),
                "ln2_b": tensor_moments(_param(b, "ln2.b")),
                "W_Q": tensor_moments(_param(b, "attn.W_Q")),
                "W_K": tensor_moments(_param(b, "attn.W_K", "attn._W_K")),
                "W_V": tensor_moments(_param(b, "attn.W_V", "attn._W_V")),
                "W_O": tensor_moments(_param(b, "attn.W_O")),
                "b_Q": tensor_moments(_param(b, "attn.b_Q")),
                "b_V": tensor_moments(_param(b, "attn.b_V", "attn._b_V")),
                "b_O": tensor_moments(_param(b, "attn.b_O")),
                "W_in": tensor_moments(_param(b, "mlp.W_in")),
                "W_gate": tensor_moments(_param(b, "mlp.W_gate")),
                "W_out": tensor_moments(_param(b, "mlp.W_out")),
                "b_in": tensor_moments(_param(b, "mlp.b_in")),
                "b_out": tensor_moments(_param(b, "mlp.b_out")),
            }
        )
    pos = _param(model, "pos_embed.W_pos") if cfg.positional_embedding_type == "standard" else None
    return {
        "d_model": int(cfg.d_model),
        "n_heads": int(cfg.n_heads),
        "d_head": int(cfg.d_head),
        "d_mlp": int(cfg.d_mlp or 0),
        "attn_scale": float(cfg.attn_scale if cfg.use_attn_scale else 1.0),
        "norm": norm,
        "parallel": bool(cfg.parallel_attn_mlp),
        "gated": bool(cfg.gated_mlp),
        "act": act,
        "embed": tensor_moments(model.embed.W_E),
        "pos": tensor_moments(pos),
        "blocks": blocks,
    }


# --------------------------------------------------------------------------------------------------------------
# Gaussian expectations of activation functions
# --------------------------------------------------------------------------------------------------------------
def _act(name: str, z: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "silu":
        return z / (1.0 + np.exp(-z))
    if name == "gelu":
        # torch's vectorized erf: np.vectorize(math.erf) made the kernel grid the prediction's slowest step
        return 0.5 * z * (1.0 + torch.special.erf(torch.from_numpy(z / math.sqrt(2.0))).numpy())
    # gelu_new / gelu_fast: the tanh approximation
    return 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3)))


def act_kernel(name: str, var: float, rho: np.ndarray) -> np.ndarray:
    """E[act(z1) act(z2)] for z1, z2 ~ N(0, var) with correlation ``rho`` (array), by Gauss-Hermite quadrature."""
    x, w = np.polynomial.hermite_e.hermegauss(_QUAD_NODES)
    w = w / math.sqrt(2.0 * math.pi)
    s = math.sqrt(max(var, 0.0))
    r = np.clip(np.asarray(rho, dtype=float), -1.0, 1.0)[..., None, None]
    u, v = x[:, None], x[None, :]
    a1 = _act(name, s * u)
    a2 = _act(name, s * (r * u + np.sqrt(1.0 - r**2) * v))
    return (a1 * a2 * (w[:, None] * w[None, :])).sum(axis=(-2, -1))


def _kernel_lookup(name: str, var: float) -> callable:
    grid = np.linspace(-1.0, 1.0, _RHO_GRID)
    vals = act_kernel(name, var, grid)
    return lambda rho: np.interp(np.clip(rho, -1.0, 1.0), grid, vals)


# --------------------------------------------------------------------------------------------------------------
# The propagation
# --------------------------------------------------------------------------------------------------------------
def _normed(
    C: np.ndarray, M: float, K: float, off_sq: float, w: Moments, b: Moments, norm: str
) -> tuple[np.ndarray, float, float]:
    """Moments of norm(x): unit second moment per coordinate times the gain's, plus the bias' (LayerNorm also
    removes the coordinate mean, whose square is ``off_sq``)."""
    if norm == "none":
        return C, M, K
    off = off_sq if norm.startswith("LN") else 0.0
    Cc = C - off
    q = np.clip(np.diag(Cc), 1e-30, None)
    scale = np.sqrt(q[:, None] * q[None, :])
    g2 = w.second if (w.std or w.mean) else 1.0
    qm = float(q.mean())
    return g2 * Cc / scale + b.second, g2 * (M - off) / qm + b.second, g2 * (K - off) / qm + b.second


def _attention(
    C: np.ndarray, M: float, K: float, p: dict[str, Any], blk: dict[str, Moments]
) -> tuple[np.ndarray, float, float, float]:
    d, T = p["d_model"], C.shape[0]
    sv, so = blk["W_V"].std ** 2 * d, blk["W_O"].std ** 2 * p["n_heads"] * p["d_head"]
    Cv, Mv, Kv = sv * C + blk["b_V"].second, sv * M + blk["b_V"].second, sv * K + blk["b_V"].second
    q = float(np.diag(C).mean())
    c = float((C.sum() - np.trace(C)) / max(T * (T - 1), 1))
    score_var = (
        (blk["W_Q"].std ** 2 * d * q + blk["b_Q"].second)
        * blk["W_K"].std ** 2
        * d
        * max(q - c, 0.0)
        * p["d_head"]
        / p["attn_scale"] ** 2
    )
    n = np.arange(1, T + 1, dtype=float)
    part = np.minimum(1.0, np.exp(min(score_var, 50.0)) / n)
    W = np.tril(np.ones((T, T))) / n[:, None]
    Z = W @ Cv @ W.T
    full = np.cumsum(np.cumsum(Cv, 0), 1)
    s_all, s_diag = np.diag(full), np.cumsum(np.diag(Cv))
    off_mean = np.where(n > 1, (s_all - s_diag) / np.maximum(n * (n - 1), 1), 0.0)
    np.fill_diagonal(Z, part * s_diag / n + (1.0 - part) * off_mean)
    # the same token in two contexts shares only its own value: the self weight, 1 / (t+1) in expectation
    self_w = float((1.0 / n).mean()) ** 2
    Kz = Mv + (Kv - Mv) * self_w
    return so * Z + blk["b_O"].second, so * Mv + blk["b_O"].second, so * Kz + blk["b_O"].second, float(part.mean())


def _mlp(
    C: np.ndarray, M: float, K: float, p: dict[str, Any], blk: dict[str, Moments]
) -> tuple[np.ndarray, float, float]:
    d = p["d_model"]
    first = blk["W_gate"] if p["gated"] else blk["W_in"]
    first_b = Moments() if p["gated"] else blk["b_in"]
    s1 = first.std**2 * d
    pre, pre_m, pre_k = s1 * C + first_b.second, s1 * M + first_b.second, s1 * K + first_b.second
    var = float(np.diag(pre).mean())
    kern = _kernel_lookup(p["act"], var)
    H, Hm, Hk = kern(pre / var), float(kern(pre_m / var)), float(kern(pre_k / var))
    if p["gated"]:
        s2, b2 = blk["W_in"].std ** 2 * d, blk["b_in"].second
        H, Hm, Hk = H * (s2 * C + b2), Hm * (s2 * M + b2), Hk * (s2 * K + b2)
    so, bo = blk["W_out"].std ** 2 * p["d_mlp"], blk["b_out"].second
    return so * H + bo, so * Hm + bo, so * Hk + bo


def predict(model_or_moments: Any, n_ctx: int = 128, same_token: float = 0.0, skip_first: int = 1) -> pd.DataFrame:
    """Predicted residual statistics after every block of a random model with ``model_or_moments``' per-tensor
    moments (a ``HookedTransformer`` or :func:`weight_moments`), on windows of ``n_ctx`` tokens.

    ``same_token``: the chance that two positions hold the same token (0 for distinct tokens). Positions before
    ``skip_first`` are left out of the averages (the measured statistics leave the boundary token out).

    One row per layer (``blocks.L.hook_resid_post``; layer -1 is the embedding): ``rms`` (root mean squared norm),
    ``growth`` (rms over the embedding's), ``variance`` (per coordinate, about the mean), ``emb_share`` (the
    embedding's variance over it), ``attn_write`` / ``mlp_write`` (each block's write, in units of the embedding's
    variance), ``participation`` (mean softmax participation; 1 / n is uniform).
    """
    p = model_or_moments if isinstance(model_or_moments, dict) else weight_moments(model_or_moments)
    T, d = int(n_ctx), p["d_model"]
    if T < 2:
        raise ValueError(f"n_ctx must be >= 2; got {n_ctx}")
    e, pos = p["embed"], p["pos"]
    emb_var = e.std**2
    C = np.full((T, T), e.mean**2 + same_token * emb_var + pos.mean**2)
    np.fill_diagonal(C, e.second + pos.second)
    M = e.mean**2 + same_token * emb_var
    K = e.second + pos.mean**2  # the same token at two positions of different windows
    off_sq = e.mean**2  # the squared coordinate mean (what LayerNorm removes)
    keep = slice(int(skip_first), None)
    rows = []

    def row(layer: int, C: np.ndarray, M: float, K: float, writes: tuple[float, float, float]) -> dict[str, float]:
        q = float(np.diag(C)[keep].mean())
        var = max(q - M, 1e-30)
        attn, mlp, part = writes
        return {
            "layer": layer,
            "rms": math.sqrt(d * q),
            "variance": var,
            "token_share": min(max((K - M) / var, 0.0), 1.0),
            "emb_share": min(emb_var / var, 1.0),
            "attn_write": attn / emb_var if emb_var else float("nan"),
            "mlp_write": mlp / emb_var if emb_var else float("nan"),
            "participation": part,
        }

    rows.append(row(-1, C, M, K, (0.0, 0.0, float("nan"))))
    for i, blk in enumerate(p["blocks"]):
        Cn, Mn, Kn = _normed(C, M, K, off_sq, blk["ln1_w"], blk["ln1_b"], p["norm"])
        A, Am, Ak, part = _attention(Cn, Mn, Kn, p, blk)
        if p["parallel"]:
            Cn2, Mn2, Kn2 = _normed(C, M, K, off_sq, blk["ln2_w"], blk["ln2_b"], p["norm"])
        else:
            Cn2, Mn2, Kn2 = _normed(C + A, M + Am, K + Ak, off_sq, blk["ln2_w"], blk["ln2_b"], p["norm"])
        F, Fm, Fk = _mlp(Cn2, Mn2, Kn2, p, blk)
        C, M, K = C + A + F, M + Am + Fm, K + Ak + Fk
        off_sq += (blk["b_O"].mean + blk["b_out"].mean) ** 2
        writes = (float(np.diag(A)[keep].mean() - Am), float(np.diag(F)[keep].mean() - Fm), part)
        rows.append(row(i, C, M, K, writes))
    out = pd.DataFrame(rows)
    out["growth"] = out["rms"] / out["rms"].iloc[0]
    return out


def retention_report(pred: pd.DataFrame, moments: dict[str, Any], layers: list[int] | None = None) -> list[str]:
    """Sentences that say, from :func:`predict`'s table, which per-tensor statistics keep (or lose) the token: the
    embedding's std against the blocks' writes, and the embedding's predicted share of the variance at ``layers``."""
    e = moments["embed"]
    body = pred[pred.layer >= 0]
    layers = layers if layers is not None else [int(body.layer.iloc[len(body) // 3]), int(body.layer.iloc[-1])]
    first = moments["blocks"][0]
    out = [
        f"Embedding entries: mean {e.mean:.3g}, std {e.std:.3g} (variance {e.std**2:.3g} per coordinate). Block 0 "
        f"reads it through gains with E[g^2] = {first['ln1_w'].second:.3g}; std(W_V) {first['W_V'].std:.3g}, "
        f"std(W_O) {first['W_O'].std:.3g}, std(W_out) {first['W_out'].std:.3g}.",
        f"Each block writes, on average over the first {len(body)} blocks, {body.attn_write.mean():.3g}x (attention) "
        f"and {body.mlp_write.mean():.3g}x (MLP) the embedding's variance; a block's write does not depend on the "
        f"residual's size (it reads a normalized copy), so the embedding's share falls like 1 / (1 + L x write).",
    ]
    for layer in layers:
        r = pred[pred.layer == layer].iloc[0]
        out.append(
            f"After block {layer}: residual rms x{r.growth:.3g} the embedding's; the embedding is "
            f"{r.emb_share:.1%} of the variance (a lower bound of the token-identity share)."
        )
    return out


def moments_record(moments: dict[str, Any]) -> dict[str, Any]:
    """:func:`weight_moments` as JSON (each tensor's [mean, std]), to keep beside a cache of the model."""

    def enc(v: Any) -> Any:
        if isinstance(v, Moments):
            return [v.mean, v.std]
        if isinstance(v, dict):
            return {k: enc(x) for k, x in v.items()}
        if isinstance(v, list):
            return [enc(x) for x in v]
        return v

    return enc(moments)


def moments_from_record(record: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`moments_record`."""
    out = dict(record)
    for key in ("embed", "pos"):
        out[key] = Moments(*record[key])
    out["blocks"] = [{k: Moments(*v) for k, v in b.items()} for b in record["blocks"]]
    return out


def scaled_embedding(moments: dict[str, Any], scale: float) -> dict[str, Any]:
    """``moments`` with the token embedding multiplied by ``scale`` (notebook 06's embedding option)."""
    e = moments["embed"]
    return {**moments, "embed": Moments(e.mean * scale, e.std * abs(scale))}


def scaled_outputs(moments: dict[str, Any], scale: float) -> dict[str, Any]:
    """``moments`` with every block's output projections (W_O, W_out) multiplied by ``scale``."""
    if scale == 1.0:
        return moments
    blocks = []
    for b in moments["blocks"]:
        b = dict(b)
        for k in ("W_O", "W_out"):
            b[k] = Moments(b[k].mean * scale, b[k].std * abs(scale))
        blocks.append(b)
    return {**moments, "blocks": blocks}


def same_token_rate(tokens: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """The chance that two kept positions of the same window hold the same token (mean over windows)."""
    rates = []
    for i in range(tokens.shape[0]):
        t = tokens[i] if mask is None else tokens[i][mask[i].bool()]
        n = len(t)
        if n > 1:
            c = torch.bincount(t.long()).double()
            rates.append(float((c * (c - 1)).sum()) / (n * (n - 1)))
    return float(np.mean(rates)) if rates else 0.0
