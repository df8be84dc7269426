"""A fast TopK sparse-autoencoder trainer: one dense encoder product per token, everything else k-sparse.

Why: sae-lens's TopK step runs dense (tokens x d_sae) tensors through the top-k, the decoder, the auxiliary loss
and autograd, so at the paper's width (d_sae = 64 d_in) it costs several dense products per token. The floor is
the encoder product (2 d_in d_sae FLOPs per token); after the top-k only k latents per token matter. Here the
forward pass and the exact gradients are written by hand:

* encoder: one ``mm`` into a reused (batch, d_sae) buffer (b_enc rides in it as a column of W_enc against a
  column of ones: addmm would first copy the bias into every output row), then a two-level top-k
  (:func:`topk_select`);
* decoder: ``embedding_bag`` over the k chosen rows with the activations as per-sample weights; its backward
  gives the activations' gradient (a k-row gather-dot per token);
* weight gradients: the (latent, token) pairs sorted by latent, each latent's row a weighted sum of token rows
  (:func:`row_sums`: no (tokens * k, d_in) contribution tensor, no row-by-row ``index_add_``); the ones column
  makes b_enc's gradient come with W_enc's;
* the decoder gradient's component along each row comes from the same pairs (sum of act * d loss/d act);
  fused Adam; rows renormalised.

Training rule (EleutherAI sparsify, the paper's trainer): z = topk(relu(W_enc (x - b_dec) + b_enc)),
x_hat = z W_dec + b_dec; loss = FVU (squared error over the batch's variance around its mean) + auxk_alpha * AuxK,
AuxK = min(n_dead / k_aux, 1) * |e_hat - e|^2 / variance with e the detached residual and e_hat the decoding
(no bias) of the top k_aux = d_in // 2 dead latents' activations; a latent is dead after more than
``dead_tokens_threshold`` tokens without a positive activation. Decoder rows are unit norm: the gradient part
parallel to each row is removed before Adam and the rows are renormalised after it. Adam, lr 2e-4 / sqrt(d_sae /
2**14) (:func:`rsae_utils.sae.spec.paper_lr`). One deliberate difference from sparsify 1.3.3: its fused encoder
drops the AuxK gradient of the encoder, so there AuxK moves only dead decoder rows; here it reaches the encoder too
(Gao et al. 2024, and sae-lens), which is what lets a dead latent fire again.

``matmul_dtype="bfloat16"`` (``"auto"``: where :func:`bf16_is_fast`) runs the encoder product in bf16 (fp32
accumulation; on an AVX512-BF16 CPU ~3x faster, a step at batch 512 ~1.5x) from a bf16 copy of the encoder, only to
choose the k latents: their activations are recomputed exactly in fp32 (:func:`pair_dots`) and all after is fp32,
so losses and gradients are exact for the chosen set; only a latent within bf16 rounding of the k-th may swap.

W_enc is (d_sae, d_in) like sparsify's encoder weight (sparse gradients touch contiguous rows); sae-lens's is its
transpose, :func:`to_sae_lens` converts. On cores shared with other jobs, start Python with OMP_WAIT_POLICY=PASSIVE:
spinning OpenMP threads make each of the step's many small parallel ops wait for a time slice.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from sae_lens.saes.sae import SAEMetadata
from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig

from rsae_utils.errors import ParameterError
from rsae_utils.sae.spec import paper_lr

Params = dict[str, torch.Tensor]  # W_enc (d_sae, d_in), b_enc (d_sae,), W_dec (d_sae, d_in), b_dec (d_in,)
NAMES = ("W_enc", "b_enc", "W_dec", "b_dec")
MATMUL_DTYPES = ("float32", "bfloat16", "auto")


def _group_size(n: int, k: int) -> int:
    """Group width for :func:`topk_select`: the one that sorts fewest values (n / g + k * g); 1 (plain torch.topk)
    where no width divides n with k * g <= n / 4."""
    ok = [g for g in (64, 32, 16, 8) if n % g == 0 and 4 * k * g <= n]
    return min(ok, key=lambda g: n / g + k * g, default=1)


def topk_select(pre: torch.Tensor, k: int, group: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest values of each row and their columns (unsorted): the same set as ``torch.topk`` up to ties.

    Two levels, because torch.topk's per-element cost on CPU is a large share of the encoder product's: every
    top-k element lies in one of the k groups with the largest maxima (a group whose maximum is below the k-th
    largest group maximum holds nothing above it), so the top-k of those k groups' members is exact. A group is
    the g columns congruent modulo n / g: its maxima are an elementwise max of g contiguous slices of the row (one
    vectorised pass; a reduction over short contiguous runs is several times slower), and the sorts then see
    n / g + k * g values per row instead of n.
    """
    rows, n = pre.shape
    g = _group_size(n, k) if group is None else group
    if g <= 1:
        return pre.topk(k, dim=1, sorted=False)
    ng = n // g
    grouped = pre.view(rows, g, ng)  # grouped[r, i, j] = pre[r, i * ng + j]: group j is column j of each slice
    groups = grouped.amax(1).topk(k, dim=1, sorted=False).indices
    vals, j = grouped.gather(2, groups.unsqueeze(1).expand(rows, g, k)).view(rows, g * k).topk(k, dim=1, sorted=False)
    return vals, (j // k) * ng + groups.gather(1, j % k)


def row_sums(
    bag_rows: torch.Tensor,
    src: torch.Tensor,
    counts: torch.Tensor,
    weights: torch.Tensor,
    out: torch.Tensor | None = None,
    csr: bool | None = None,
) -> torch.Tensor:
    """out[l] = sum_j weights_j src[bag_rows_j] over bag l, the bags being consecutive runs of ``counts`` entries.

    On CPU a CSR (bags x src rows) product written into a reused buffer: a fresh (d_sae, d_in) output each step
    (embedding_bag's) costs more in page faults than the sums themselves. Elsewhere (or ``csr=False``)
    embedding_bag.
    """
    if not (src.device.type == "cpu" if csr is None else csr):
        return F.embedding_bag(bag_rows, src, counts.cumsum(0) - counts, mode="sum", per_sample_weights=weights)
    crow = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore")
        csr = torch.sparse_csr_tensor(crow, bag_rows, weights, (counts.shape[0], src.shape[0]))
    out = src.new_empty(counts.shape[0], src.shape[1]) if out is None else out
    return torch.addmm(out, csr, src, beta=0, out=out)


def _decode_with_grad(idx: torch.Tensor, acts: torch.Tensor, W_dec: torch.Tensor):
    """Sparse decoding sum_j acts_j W_dec[idx_j], and a function giving d loss / d acts from d loss / d output:
    embedding_bag's backward is exactly that k-row gather-dot; W_dec does not require grad (no dense gradient)."""
    with torch.enable_grad():
        a = acts.detach().requires_grad_()
        out = F.embedding_bag(idx, W_dec, per_sample_weights=a, mode="sum")
    return out.detach(), lambda grad_out: torch.autograd.grad(out, a, grad_out)[0]


def pair_dots(xc: torch.Tensor, enc: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """xc[t] . enc[idx[t, j]] (B, k) in xc's dtype: the chosen latents' exact pre-activations.

    On CPU sampled_addmm: one dot per pair straight from the dense operands. Measured at d_sae 9216, 577 columns,
    k 32, 2 threads: batch 512 3 ms, 4096 42 ms; embedding_bag's gather-dot backward 9 / 77 ms; a gather of the B k
    encoder rows + bmm or einsum 37 / 330 ms (row-chunked 25 / 190 ms): the row copies cost. Elsewhere gather + bmm."""
    B, k = idx.shape
    if xc.device.type != "cpu":
        return torch.bmm(enc[idx], xc.unsqueeze(2)).squeeze(2)
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore")
        crow = torch.arange(0, B * k + 1, k, device=xc.device)
        mask = torch.sparse_csr_tensor(crow, idx.reshape(-1), xc.new_zeros(B * k), (B, enc.shape[0]))
        return torch.sparse.sampled_addmm(mask, xc, enc.t(), beta=0).values().view(B, k)


@functools.cache
def bf16_is_fast(device: str | torch.device = "cpu") -> bool:
    """Whether bf16 products run natively on ``device``: a CUDA GPU with bf16 units, or a CPU with torch's AVX-512
    kernels and bf16 dot-product instructions (avx512_bf16 or AMX). Elsewhere bf16 is emulated, slower than fp32."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    cpuinfo = Path("/proc/cpuinfo")  # Linux's CPU flags; elsewhere assume emulated
    flags = set(cpuinfo.read_text().split()) if device.type == "cpu" and cpuinfo.is_file() else set()
    avx512 = "AVX512" in torch.backends.cpu.get_cpu_capability() and torch.backends.mkldnn.is_available()
    return avx512 and bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_matmul_dtype(value: Any, device: torch.device, dtype: torch.dtype) -> str:
    """Checked ``matmul_dtype``; "auto": "bfloat16" where :func:`bf16_is_fast` and the parameters are fp32."""
    if not isinstance(value, str) or value not in MATMUL_DTYPES:
        raise ParameterError(f"parameter 'matmul_dtype' must be one of {', '.join(MATMUL_DTYPES)}; got {value!r}")
    fast = value == "auto" and dtype == torch.float32 and bf16_is_fast(device)
    return value if value != "auto" else "bfloat16" if fast else "float32"


def loss_and_grads(
    p: Params,
    x: torch.Tensor,
    k: int,
    dead: torch.Tensor | None = None,
    auxk_alpha: float = 1 / 32,
    pre_buf: torch.Tensor | None = None,
    grad_bufs: Mapping[str, torch.Tensor] | None = None,
    matmul_dtype: str = "float32",
) -> dict[str, Any]:
    """Losses and exact gradients of ``fvu + auxk_alpha * auxk`` for batch ``x`` (see the module docstring):
    fvu, auxk (0-d tensors), grads {name: tensor}, ``W_dec_parallel`` (each decoder-gradient row's dot with its
    decoder row, for the unit-norm projection), idx and acts (the top-k latents, (batch, k)) and n_dead.
    The encoder is used as "enc" = [W_enc | b_enc] (d_sae, d_in + 1), from ``p`` when there (the trainer's layout),
    else built; grads["enc"] is its gradient, grads["W_enc"] and grads["b_enc"] views of it. ``pre_buf`` (batch,
    d_sae) is reused for the pre-activations (bf16 for matmul_dtype "bfloat16", which takes enc's bf16 copy from
    p["enc_bf16"] when there), ``grad_bufs`` {"enc", "W_dec"} for those gradients (CPU)."""
    W_enc, b_enc, W_dec, b_dec = (p[n] for n in NAMES)
    enc = p["enc"] if "enc" in p else torch.cat([W_enc, b_enc.unsqueeze(1)], 1)
    B, d = x.shape
    m = W_enc.shape[0]
    xc = torch.cat([x - b_dec, x.new_ones(B, 1)], 1)  # the ones column multiplies b_enc
    lowp = resolve_matmul_dtype(matmul_dtype, x.device, x.dtype) == "bfloat16"
    enc_mm = (p["enc_bf16"] if "enc_bf16" in p else enc.bfloat16()) if lowp else enc
    pre = torch.mm(xc.to(enc_mm.dtype), enc_mm.t(), out=pre_buf)  # the one dense product
    acts, idx = topk_select(pre, k)
    acts = pair_dots(xc, enc, idx) if lowp else acts  # bf16 only chose the latents: their exact values
    acts.relu_()  # relu after the top-k equals the top-k after relu (relu is monotone)
    xm = (x - x.mean(0)).view(-1)
    total_var = torch.dot(xm, xm)  # sum of squares around the batch mean
    x_hat, acts_grad = _decode_with_grad(idx, acts, W_dec)
    e = xc[:, :d] - x_hat  # x - reconstruction
    fvu = torch.dot(e.view(-1), e.view(-1)) / total_var
    g = e * (-2.0 / total_var)  # d fvu / d x_hat
    g_acts = acts_grad(g)

    tok = torch.arange(B, device=x.device).repeat_interleave(k)
    lat, w_dec, g_act, src, src_tok, enc_tok = idx.reshape(-1), acts.reshape(-1), g_acts.reshape(-1), g, tok, tok
    auxk, n_dead = x.new_zeros(()), 0
    if dead is not None and auxk_alpha > 0 and (n_dead := int(dead.sum())) > 0:
        k_aux = min(d // 2, n_dead)
        scale = min(n_dead / (d // 2), 1.0)  # fewer dead latents than k_aux: a smaller loss (sparsify)
        if 8 * n_dead <= m:  # few dead latents: their columns only
            dead_idx = dead.nonzero().squeeze(1)
            a_acts, j = pre.index_select(1, dead_idx).topk(k_aux, dim=1, sorted=False)
            a_idx = dead_idx[j]
        else:  # pre is not needed any more: mask it in place
            a_acts, a_idx = topk_select(pre.masked_fill_(~dead, -math.inf), k_aux)
        a_acts = pair_dots(xc, enc, a_idx).relu_() if lowp else a_acts.relu_()
        e_hat, a_grad = _decode_with_grad(a_idx, a_acts, W_dec)
        r = e_hat - e  # e is a fixed target: AuxK trains only the dead latents
        auxk = scale * torch.dot(r.view(-1), r.view(-1)) / total_var
        ga = r * (2.0 * auxk_alpha * scale / total_var)
        a_tok = torch.arange(B, device=x.device).repeat_interleave(k_aux)
        lat = torch.cat([lat, a_idx.reshape(-1)])
        w_dec = torch.cat([w_dec, a_acts.reshape(-1)])
        g_act = torch.cat([g_act, a_grad(ga).reshape(-1)])
        src, src_tok, enc_tok = torch.cat([g, ga]), torch.cat([tok, a_tok + B]), torch.cat([tok, a_tok])

    g_pre = g_act * (w_dec > 0)  # through the relu
    # Pairs sorted by latent: one bag per latent, so each weight-gradient row is a weighted sum of token rows.
    order = torch.argsort(lat, stable=True)
    counts = torch.bincount(lat, minlength=m)
    bufs = grad_bufs or {}
    grads = {"W_dec": row_sums(src_tok[order], src, counts, w_dec[order], bufs.get("W_dec"))}
    grads["enc"] = row_sums(enc_tok[order], xc, counts, g_pre[order], bufs.get("enc"))
    grads["W_enc"], grads["b_enc"] = grads["enc"][:, :d], grads["enc"][:, d]  # ones column: sum of g_pre
    # b_dec: + through x_hat, - through x - b_dec into the encoder (sum_t dL/dxc_t = grad_b_enc @ W_enc).
    grads["b_dec"] = g.sum(0) - grads["b_enc"] @ W_enc
    # grad_W_dec[l] . W_dec[l] = sum over l's pairs of act * (source row . W_dec[l]) = sum of act * d loss / d act.
    parallel = W_dec.new_zeros(m).index_add_(0, lat, w_dec * g_act)
    return dict(fvu=fvu, auxk=auxk, grads=grads, W_dec_parallel=parallel, idx=idx, acts=acts, n_dead=n_dead)


@torch.no_grad()
def unit_rows_(W: torch.Tensor) -> torch.Tensor:
    """Divide each row by its norm (+ eps, as sparsify), in place."""
    return W.div_(torch.linalg.vector_norm(W, dim=1, keepdim=True).add_(torch.finfo(W.dtype).eps))


def init_params(d_in: int, d_sae: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> Params:
    """sparsify's initialisation: W_enc ~ U(+-1/sqrt(d_in)) (nn.Linear's), W_dec = W_enc with unit rows, biases 0.

    The tied start (decoder = encoder transpose) is Gao et al.'s remedy against dead latents. b_dec is set to the
    first batch's mean by the trainer (sparsify), so that the pre-activations start centred.
    """
    gen = torch.Generator().manual_seed(int(seed))
    W_enc = (torch.rand(d_sae, d_in, generator=gen, dtype=torch.float64) * 2 - 1).div_(math.sqrt(d_in)).to(dtype)
    b_enc, b_dec = torch.zeros(d_sae, dtype=dtype), torch.zeros(d_in, dtype=dtype)
    return {"W_enc": W_enc, "b_enc": b_enc, "W_dec": unit_rows_(W_enc.clone()), "b_dec": b_dec}


def params_from_sae_lens(sae: Any) -> Params:
    """Weights of a sae-lens TopK SAE (training or inference) as this module's unit-decoder parameters.

    Decoder norms are folded into the encoder (W_enc * n, b_enc * n, W_dec / n): exact when the SAE rescales
    activations by decoder norm (sae-lens's TopK training default) or when the norms are all equal (its init).
    """
    W_enc, b_enc = sae.W_enc.detach().t().clone(), sae.b_enc.detach().clone()
    W_dec, b_dec = sae.W_dec.detach().clone(), sae.b_dec.detach().clone()
    n = torch.linalg.vector_norm(W_dec, dim=1)
    if not getattr(sae.cfg, "rescale_acts_by_decoder_norm", False) and (n.max() - n.min()) > 1e-5 * n.max():
        raise ParameterError(
            "parameter 'init_from' must have equal decoder-row norms or rescale_acts_by_decoder_norm"
            "=True (otherwise unit rows change which latents win the top-k)"
        )
    return {"W_enc": W_enc * n[:, None], "b_enc": b_enc * n, "W_dec": W_dec / n[:, None], "b_dec": b_dec}


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ParameterError(f"parameter '{name}' must be an integer >= {minimum}; got {value!r}")
    return value


@dataclass
class TopKResult:
    """A trained TopK SAE (this module's layout: W_enc (d_sae, d_in), unit-norm W_dec rows) and how it trained."""

    W_enc: torch.Tensor
    b_enc: torch.Tensor
    W_dec: torch.Tensor
    b_dec: torch.Tensor
    k: int
    steps: int = 0
    tokens: int = 0
    seconds: float = 0.0
    tokens_since_fired: torch.Tensor | None = None
    curve: list[dict[str, float]] = field(default_factory=list)  # every log_every steps: fvu, auxk, n_dead, lr
    matmul_dtype: str = "float32"  # the training encoder product's ("auto" resolved)

    d_in = property(lambda self: self.W_enc.shape[1])
    d_sae = property(lambda self: self.W_enc.shape[0])

    def params(self) -> Params:
        return {n: getattr(self, n) for n in NAMES}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k activations and latent indices, each (tokens, k)."""
        pre = torch.addmm(self.b_enc, x.to(self.W_enc) - self.b_dec, self.W_enc.t())
        acts, idx = topk_select(pre, self.k)
        return acts.relu_(), idx

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        acts, idx = self.encode(x)
        return F.embedding_bag(idx, self.W_dec, per_sample_weights=acts, mode="sum") + self.b_dec


class TopKTrainer:
    """Holds the parameters, fused Adam and the dead-latent counters; :meth:`step` trains on one batch. Parameters:
    :func:`train_topk`'s; with matmul_dtype "bfloat16" also a bf16 copy of enc (``p["enc_bf16"]``)."""

    def __init__(
        self,
        d_in: int,
        d_sae: int,
        k: int = 32,
        *,
        lr: float | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        dead_tokens_threshold: int = 10_000_000,
        auxk_alpha: float = 1 / 32,
        lr_warmup_steps: int = 0,
        init_from: Any = None,
        center_b_dec: bool | None = None,
        matmul_dtype: str = "float32",
    ):
        self.d_in, self.d_sae = _positive_int("d_in", d_in), _positive_int("d_sae", d_sae)
        if isinstance(k, bool) or not isinstance(k, int) or not 0 < k < d_sae:
            raise ParameterError(f"parameter 'k' must be an integer in 1..{d_sae - 1} (below d_sae={d_sae}); got {k!r}")
        self.k, self.dead_tokens_threshold = k, _positive_int("dead_tokens_threshold", dead_tokens_threshold, 0)
        self.lr_warmup_steps = _positive_int("lr_warmup_steps", lr_warmup_steps, 0)
        self.lr = paper_lr(d_sae) if lr is None else float(lr)
        if not self.lr > 0:
            raise ParameterError(f"parameter 'lr' must be > 0 (or None: paper_lr(d_sae)); got {lr!r}")
        if not auxk_alpha >= 0:
            raise ParameterError(f"parameter 'auxk_alpha' must be >= 0 (0 turns AuxK off); got {auxk_alpha!r}")
        self.auxk_alpha, self.device = float(auxk_alpha), torch.device(device)
        self.matmul_dtype = resolve_matmul_dtype(matmul_dtype, self.device, dtype)
        p = init_from.params() if isinstance(init_from, TopKResult) else init_from
        if p is None:
            p = init_params(d_in, d_sae, seed, dtype)
        elif not isinstance(p, Mapping):
            p = params_from_sae_lens(p)
        shapes = {"W_enc": (d_sae, d_in), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
        for n, shape in shapes.items():
            if tuple(p[n].shape) != shape:
                raise ParameterError(f"parameter 'init_from' must hold {n} of shape {shape}; got {tuple(p[n].shape)}")
        p = {n: p[n].detach().to(self.device, dtype) for n in NAMES}
        enc = torch.cat([p["W_enc"], p["b_enc"].unsqueeze(1)], 1)  # see loss_and_grads
        self.p = {"enc": enc, "W_enc": enc[:, :d_in], "b_enc": enc[:, d_in]}
        self.p |= {n: p[n].clone() for n in ("W_dec", "b_dec")}
        if self.matmul_dtype == "bfloat16":  # the product's copy of enc, refreshed after each step
            self.p["enc_bf16"] = enc.bfloat16()
        self.trained = ("enc", "W_dec", "b_dec")
        unit_rows_(self.p["W_dec"])
        self.center_b_dec = init_from is None if center_b_dec is None else bool(center_b_dec)
        fused = self.device.type in ("cpu", "cuda")  # one kernel for the whole update, not ~10 passes
        self.opt = torch.optim.Adam([self.p[n] for n in self.trained], lr=self.lr, fused=fused)
        # One spare slot (index d_sae) absorbs the top-k entries that did not fire, so no data-dependent shapes.
        self.since_fired = torch.zeros(d_sae + 1, dtype=torch.int64, device=self.device)
        self.steps, self.tokens, self.seconds = 0, 0, 0.0
        self._buf: torch.Tensor | None = None
        cpu = self.device.type == "cpu"  # row_sums writes into these there
        self._grad_bufs = {n: torch.empty_like(self.p[n]) for n in ("enc", "W_dec")} if cpu else None

    def check_batch(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.d_in or x.shape[0] < 2:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ParameterError(
                f"parameter 'batch' must be a tensor of shape (tokens >= 2, d_in={self.d_in}); got {got}"
            )
        return x.to(self.device, self.p["W_enc"].dtype, non_blocking=True)

    def n_dead(self) -> int:
        """Latents now without a positive activation for more than dead_tokens_threshold tokens."""
        return int((self.since_fired[: self.d_sae] > self.dead_tokens_threshold).sum())

    def lr_at(self, step: int) -> float:
        """Linear warm-up from 0 over lr_warmup_steps (sparsify's schedule, without its decay), then constant."""
        return self.lr * (step / self.lr_warmup_steps if step < self.lr_warmup_steps else 1.0)

    @torch.no_grad()
    def step(self, batch: torch.Tensor) -> dict[str, Any]:
        """One optimiser step on ``batch`` (tokens, d_in); returns loss_and_grads's output (tensors, unsynced)."""
        x = self.check_batch(batch)
        t0 = time.perf_counter()
        if self.steps == 0 and self.center_b_dec:
            self.p["b_dec"].copy_(x.mean(0))  # sparsify: start the decoder bias at the data mean
        if self._buf is None or self._buf.shape[0] != x.shape[0]:
            self._buf = x.new_empty(x.shape[0], self.d_sae, dtype=self.p.get("enc_bf16", x).dtype)
        dead = self.since_fired[: self.d_sae] > self.dead_tokens_threshold if self.auxk_alpha > 0 else None
        bufs = dict(pre_buf=self._buf, grad_bufs=self._grad_bufs, matmul_dtype=self.matmul_dtype)
        out = loss_and_grads(self.p, x, self.k, dead, self.auxk_alpha, **bufs)
        grads, W_dec = out["grads"], self.p["W_dec"]
        grads["W_dec"].addcmul_(out["W_dec_parallel"].unsqueeze(1), W_dec, value=-1.0)  # keep rows on the sphere
        for n in self.trained:
            self.p[n].grad = grads[n]
        self.opt.param_groups[0]["lr"] = self.lr_at(self.steps)
        self.opt.step()
        for n in self.trained:
            self.p[n].grad = None
        if "enc_bf16" in self.p:
            self.p["enc_bf16"].copy_(self.p["enc"])
        unit_rows_(W_dec)
        self.since_fired += x.shape[0]
        self.since_fired.index_fill_(0, torch.where(out["acts"] > 0, out["idx"], self.d_sae).reshape(-1), 0)
        self.steps, self.tokens = self.steps + 1, self.tokens + x.shape[0]
        self.seconds += time.perf_counter() - t0  # on CUDA, the logging steps' syncs settle the account
        return out

    def result(self, curve: list[dict[str, float]] | None = None) -> TopKResult:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        p = {n: self.p[n].detach().clone(memory_format=torch.contiguous_format) for n in NAMES}
        p |= {n: getattr(self, n) for n in ("k", "steps", "tokens", "seconds", "matmul_dtype")}
        return TopKResult(**p, tokens_since_fired=self.since_fired[: self.d_sae].clone(), curve=list(curve or []))


def train_topk(
    batches: Iterable[torch.Tensor],
    d_in: int,
    d_sae: int,
    k: int = 32,
    *,
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    dead_tokens_threshold: int = 10_000_000,
    auxk_alpha: float = 1 / 32,
    lr_warmup_steps: int = 0,
    init_from: Any = None,
    center_b_dec: bool | None = None,
    log_every: int = 10,
    matmul_dtype: str = "float32",
) -> TopKResult:
    """Train a TopK SAE on ``batches`` of (tokens, d_in) activations with sparsify's rule (module docstring).

    ``lr`` None: :func:`paper_lr`. ``init_from``: a :class:`TopKResult`, a sae-lens TopK SAE or a dict of the four
    tensors (this module's layout); None: :func:`init_params` with ``seed``, and b_dec starts at the first batch's
    mean unless ``center_b_dec`` says otherwise. ``dead_tokens_threshold`` (sparsify: 10M) tokens without a
    positive activation make a latent dead, and AuxK (weight ``auxk_alpha``, 1/32 as in Gao et al.; 0 disables it)
    then trains it on the residual. The loss curve holds one point every ``log_every`` steps and the last step.
    ``matmul_dtype`` "bfloat16" chooses the top-k latents from a bf16 encoder product (module docstring); "auto":
    bf16 where :func:`bf16_is_fast`.
    """
    log_every = _positive_int("log_every", log_every)
    kw = dict(lr=lr, seed=seed, device=device, dtype=dtype, init_from=init_from, auxk_alpha=auxk_alpha)
    kw |= dict(dead_tokens_threshold=dead_tokens_threshold, lr_warmup_steps=lr_warmup_steps, center_b_dec=center_b_dec)
    trainer = TopKTrainer(d_in, d_sae, k, **kw, matmul_dtype=matmul_dtype)
    curve: list[dict[str, float]] = []
    out: dict[str, Any] | None = None

    def log() -> None:
        point = {n: round(float(out[n]), 6) for n in ("fvu", "auxk")} | {"n_dead": trainer.n_dead()}
        curve.append({"step": trainer.steps, "tokens": trainer.tokens, **point, "lr": trainer.lr_at(trainer.steps - 1)})

    for batch in batches:
        out = trainer.step(batch)
        if trainer.steps % log_every == 0:
            log()
    if out is not None and (not curve or curve[-1]["step"] != trainer.steps):
        log()
    return trainer.result(curve)


def to_sae_lens(result: TopKResult, metadata: Mapping[str, Any] | None = None) -> TopKSAE:
    """The trained SAE as a sae-lens inference ``TopKSAE`` (architecture "topk"; ``save_model`` /
    ``SAE.load_from_disk`` round-trip it). Decoder rows are unit norm, so no norm rescaling is needed."""
    shape = dict(d_in=result.d_in, d_sae=result.d_sae, k=result.k, dtype="float32", device="cpu")
    meta = SAEMetadata(**dict(metadata or {}))
    sae = TopKSAE(TopKSAEConfig(**shape, apply_b_dec_to_input=True, normalize_activations="none", metadata=meta))
    state = {"W_enc": result.W_enc.t(), "b_enc": result.b_enc, "W_dec": result.W_dec, "b_dec": result.b_dec}
    sae.load_state_dict({n: t.detach().to("cpu", torch.float32).contiguous() for n, t in state.items()})
    return sae
