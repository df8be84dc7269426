"""From cached activations and an SAE to per-latent example sets (explainer, quantile-binned positives, negatives).

The corpus is cut into non-overlapping windows of ``window_len`` tokens (32 in the paper); trailing positions of
a context that do not fill a window are dropped. Latent activations are computed chunk-wise with ``sae.encode``
and kept sparse (only non-zero entries), so a cache of any length fits in memory as long as its non-zeros do.

Per sampled latent (:func:`sample_latents`):

* **explain**: ``n_explain`` windows drawn at random from the ``explain_pool`` windows with the highest maximum
  activation (the explainer sees these, with active tokens marked);
* **positive**: the latent's other activating windows, sorted by maximum activation and split into ``n_bins``
  equal-count quantile bins; ``per_bin`` drawn at random from each (bin 0 = weakest);
* **negative**: ``n_negatives`` windows drawn at random among those where the latent never fires.

Latents are drawn at random (seeded) among those with at least ``min_examples`` activating windows and at least
one silent one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rsae_utils.sae.metrics import plain_topk, topk_encode

KINDS = ("explain", "positive", "negative")


@dataclass
class Window:
    """One window of ``window_len`` tokens with the latent's activation on each token."""

    window: int  # global window index (seq * windows_per_seq + offset // window_len)
    seq: int  # row of the cache
    start: int  # position of the first token within its context
    tokens: list[int]
    acts: list[float]
    max_act: float
    kind: str  # one of KINDS
    bin: int = -1  # quantile bin of a positive (0 = weakest); -1 otherwise

    @property
    def label(self) -> int:
        return 0 if self.kind == "negative" else 1


@dataclass
class LatentRecord:
    """The example sets of one latent of one SAE."""

    latent: int
    n_active_windows: int
    explain: list[Window] = field(default_factory=list)
    positives: list[Window] = field(default_factory=list)
    negatives: list[Window] = field(default_factory=list)

    @property
    def scoring(self) -> list[Window]:
        return self.positives + self.negatives

    def to_dict(self) -> dict:
        """What ``dataclasses.asdict`` gives, without its deep recursion (slow on 100 latents x 150 windows): a
        window's fields are plain values and lists, copied one level deep."""
        out = {"latent": int(self.latent), "n_active_windows": int(self.n_active_windows)}
        for key in ("explain", "positives", "negatives"):
            out[key] = [dict(vars(w)) for w in getattr(self, key)]
        return out

    @classmethod
    def from_dict(cls, d: dict) -> LatentRecord:
        win = lambda xs: [Window(**w) for w in xs]  # noqa: E731
        return cls(
            latent=int(d["latent"]),
            n_active_windows=int(d["n_active_windows"]),
            explain=win(d["explain"]),
            positives=win(d["positives"]),
            negatives=win(d["negatives"]),
        )


@dataclass
class SparseActs:
    """Non-zero latent activations over a token corpus, sorted by (latent, flat token index)."""

    tokens: np.ndarray  # (n_seq, ctx) token ids
    window_len: int
    n_latents: int
    flat: np.ndarray  # flat token index seq * ctx + pos (int64)
    latent: np.ndarray  # latent index (int64)
    value: np.ndarray  # activation (float32)

    def __post_init__(self) -> None:
        order = np.lexsort((self.flat, self.latent))
        self.flat, self.latent, self.value = self.flat[order], self.latent[order], self.value[order]
        self._offsets = np.searchsorted(self.latent, np.arange(self.n_latents + 1))

    @property
    def n_seq(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def ctx(self) -> int:
        return int(self.tokens.shape[1])

    @property
    def windows_per_seq(self) -> int:
        return self.ctx // self.window_len

    @property
    def n_windows(self) -> int:
        return self.n_seq * self.windows_per_seq

    def window_of(self, flat: np.ndarray) -> np.ndarray:
        seq, pos = np.divmod(flat, self.ctx)
        return seq * self.windows_per_seq + pos // self.window_len

    def entries(self, latent: int) -> tuple[np.ndarray, np.ndarray]:
        """(flat token indices, values) of one latent's non-zero activations, in corpus order."""
        lo, hi = self._offsets[latent], self._offsets[latent + 1]
        return self.flat[lo:hi], self.value[lo:hi]

    def active_window_counts(self) -> np.ndarray:
        """Number of distinct windows in which each latent fires, shape (n_latents,).

        The entries are sorted by (latent, token), so a latent's window ids never decrease: a new window is an
        entry whose latent or window differs from the one before (one pass, no sort)."""
        if self.flat.size == 0:
            return np.zeros(self.n_latents, dtype=np.int64)
        win = self.window_of(self.flat)
        new = np.empty(self.flat.size, dtype=bool)
        new[0] = True
        np.not_equal(win[1:], win[:-1], out=new[1:])
        new[1:] |= self.latent[1:] != self.latent[:-1]
        return np.bincount(self.latent[new], minlength=self.n_latents)

    def firing_rate(self) -> np.ndarray:
        """Fraction of (windowed) tokens on which each latent is non-zero."""
        n_tok = self.n_windows * self.window_len
        return np.bincount(self.latent, minlength=self.n_latents) / max(n_tok, 1)

    def window_maxima(self, latent: int) -> tuple[np.ndarray, np.ndarray]:
        """(window ids, max activation per window) over the windows where ``latent`` fires."""
        flat, val = self.entries(latent)
        if flat.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        win = self.window_of(flat)  # non-decreasing, since flat is sorted
        starts = np.r_[0, np.flatnonzero(np.diff(win)) + 1]
        return win[starts], np.maximum.reduceat(val, starts)

    def window(self, latent: int, window: int, kind: str, bin: int = -1) -> Window:
        seq, off = divmod(int(window), self.windows_per_seq)
        start = off * self.window_len
        acts = np.zeros(self.window_len, dtype=np.float32)
        flat, val = self.entries(latent)
        lo = seq * self.ctx + start
        i, j = np.searchsorted(flat, [lo, lo + self.window_len])
        acts[flat[i:j] - lo] = val[i:j]
        return Window(
            window=int(window),
            seq=seq,
            start=start,
            tokens=[int(t) for t in self.tokens[seq, start : start + self.window_len]],
            acts=[float(a) for a in acts],
            max_act=float(acts.max()),
            kind=kind,
            bin=bin,
        )


def encode_sparse(
    sae,
    acts,
    tokens: torch.Tensor | np.ndarray,
    window_len: int = 32,
    chunk_tokens: int = 1024,
    max_seqs: int | None = None,
    codes: Any = None,
) -> SparseActs:
    """Run ``sae.encode`` over ``acts`` (n_seq, ctx, d_model) chunk-wise and keep the non-zero activations (for a
    plain TopK SAE, :func:`rsae_utils.sae.metrics.topk_encode`: the same activations without the dense tensor).

    ``acts`` may be any object sliceable along its first axis (a tensor, a memory map). Only positions inside
    full windows are encoded. ``chunk_tokens`` bounds the dense (tokens x n_latents) block held at once.
    ``codes``: the SAE's :class:`rsae_utils.sae.codes.TopKCodes` on ``acts`` (plain TopK), read instead of encoding.
    """
    tokens = np.asarray(tokens.cpu() if isinstance(tokens, torch.Tensor) else tokens)
    n_seq, ctx = tokens.shape[:2]
    if max_seqs is not None:
        n_seq = min(n_seq, max_seqs)
        tokens = tokens[:n_seq]
    if ctx < window_len:
        raise ValueError(f"context {ctx} is shorter than one window ({window_len} tokens)")
    used = (ctx // window_len) * window_len
    param = next(iter(sae.parameters()))
    parts = plain_topk(sae)  # a plain TopK SAE: its k latents per token directly, no dense latent tensor
    if codes is not None and parts is None:
        raise ValueError("codes are given for an SAE that is not plain TopK")
    k_codes = codes.idx.shape[-1] if codes is not None else 0
    # The chunk bounds the dense latent block; stored codes have none (one pass over them all).
    seqs_per_chunk = n_seq if codes is not None else max(1, chunk_tokens // used)
    flats, lats, vals = [], [], []
    n_latents = None
    with torch.inference_mode():
        for s0 in range(0, n_seq, seqs_per_chunk):
            s1 = min(n_seq, s0 + seqs_per_chunk)
            if codes is not None:  # the stored codes of these positions: no encoder product
                a, idx = codes.vals[s0:s1, :used].reshape(-1, k_codes), codes.idx[s0:s1, :used].reshape(-1, k_codes)
            else:
                x = torch.as_tensor(acts[s0:s1])[:, :used]
                x = x.reshape(-1, x.shape[-1]).to(device=param.device, dtype=param.dtype)
            if parts is not None:
                if codes is None:
                    a, idx = topk_encode(parts, x)
                idx, order = idx.sort(dim=1)  # (row, latent) order, as nonzero() gives it below
                a, idx = a.gather(1, order).float().cpu(), idx.cpu()
                n_latents = parts[0].shape[1]
                row, k = torch.nonzero(a > 0, as_tuple=True)
                col = idx[row, k]
                z_vals = a[row, k]
            else:
                z = sae.encode(x).float().cpu()
                n_latents = z.shape[-1]
                row, col = torch.nonzero(z > 0, as_tuple=True)
                z_vals = z[row, col]
            seq = s0 + row // used
            pos = row % used
            flats.append((seq * ctx + pos).numpy().astype(np.int64))
            lats.append(col.numpy().astype(np.int64))
            vals.append(z_vals.numpy().astype(np.float32))
    if n_latents is None:
        raise ValueError("no sequences to encode")
    return SparseActs(
        tokens=tokens,
        window_len=window_len,
        n_latents=int(n_latents),
        flat=np.concatenate(flats),
        latent=np.concatenate(lats),
        value=np.concatenate(vals),
    )


def eligible_latents(sp: SparseActs, min_examples: int) -> np.ndarray:
    """Latents that fire in at least ``min_examples`` windows and stay silent in at least one: a latent active in
    every window has no negatives to score against, so no AUROC."""
    counts = sp.active_window_counts()
    return np.flatnonzero((counts >= min_examples) & (counts < sp.n_windows))


def choose_latents(sp: SparseActs, n_latents: int, min_examples: int, seed: int) -> np.ndarray:
    """``n_latents`` latents drawn at random (seeded) among the eligible ones, sorted; fewer if fewer qualify."""
    pool = eligible_latents(sp, min_examples)
    rng = np.random.default_rng(seed)
    k = min(n_latents, pool.size)
    return np.sort(rng.choice(pool, size=k, replace=False)) if k else pool


def quantile_bins(n: int, n_bins: int) -> list[np.ndarray]:
    """Split positions 0..n-1 (sorted ascending by activation) into ``n_bins`` near-equal consecutive bins."""
    return [b for b in np.array_split(np.arange(n), n_bins)]


def latent_record(
    sp: SparseActs,
    latent: int,
    n_explain: int = 40,
    explain_pool: int = 100,
    n_bins: int = 10,
    per_bin: int = 10,
    n_negatives: int = 100,
    seed: int = 0,
) -> LatentRecord:
    """The example sets of ``latent`` (see the module docstring); deterministic given ``seed``."""
    rng = np.random.default_rng([seed, int(latent)])
    win, mx = sp.window_maxima(latent)
    # Explainer examples: random among the top `explain_pool` windows (ties broken by window id).
    by_strength = np.lexsort((win, -mx))
    pool = by_strength[: max(explain_pool, 0)]
    pick = rng.choice(pool, size=min(n_explain, pool.size), replace=False) if pool.size else pool
    pick = pick[np.argsort(-mx[pick], kind="stable")]
    explain = [sp.window(latent, win[i], "explain") for i in pick]
    # Scoring positives: the remaining activating windows, split into quantile bins of max activation.
    rest = np.setdiff1d(np.arange(win.size), pick)
    rest = rest[np.lexsort((win[rest], mx[rest]))]  # ascending strength
    positives: list[Window] = []
    for b, idx in enumerate(quantile_bins(rest.size, n_bins)):
        members = rest[idx]
        chosen = rng.choice(members, size=min(per_bin, members.size), replace=False) if members.size else members
        positives += [sp.window(latent, win[i], "positive", bin=b) for i in np.sort(chosen)]
    # Negatives: windows where the latent never fires.
    silent = np.setdiff1d(np.arange(sp.n_windows), win)
    neg = rng.choice(silent, size=min(n_negatives, silent.size), replace=False) if silent.size else silent
    negatives = [sp.window(latent, w, "negative") for w in np.sort(neg)]
    return LatentRecord(
        latent=int(latent), n_active_windows=int(win.size), explain=explain, positives=positives, negatives=negatives
    )


def sample_latents(
    sp: SparseActs,
    n_latents: int,
    min_examples: int,
    seed: int = 0,
    **counts,
) -> list[LatentRecord]:
    """Choose latents (see :func:`choose_latents`) and build their records; ``counts`` go to ``latent_record``."""
    chosen = choose_latents(sp, n_latents, min_examples, seed)
    return [latent_record(sp, int(lat), seed=seed, **counts) for lat in chosen]


def explain_token_stats(rec: LatentRecord) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tokens, activations, absolute positions) over the record's explainer windows, flattened."""
    if not rec.explain:
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=np.int64)
    toks = np.concatenate([np.asarray(w.tokens) for w in rec.explain])
    acts = np.concatenate([np.asarray(w.acts, dtype=float) for w in rec.explain])
    pos = np.concatenate([w.start + np.arange(len(w.tokens)) for w in rec.explain])
    return toks, acts, pos
