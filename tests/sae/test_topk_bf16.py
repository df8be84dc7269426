"""matmul_dtype="bfloat16" in the fast TopK trainer: the bf16 encoder product only chooses the top-k latents, whose
activations are then recomputed exactly in fp32 (rsae_utils.sae.topk's module docstring).

Tiny shapes, one thread (as tests/sae/test_topk.py). On a CPU without native bf16 the products are emulated:
slower, but the same numbers, so every test runs everywhere.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rsae_utils.errors import ParameterError
from rsae_utils.sae import topk
from rsae_utils.sae.topk import TopKTrainer, bf16_is_fast, init_params, loss_and_grads, train_topk

# Test 1's tolerance: both paths compute the chosen pre-activations in fp32, only in a different summation order
# (mm against one dot per pair), so they differ by fp32 rounding: ~1e-7 relative, ~1e-8 absolute on its gradients
# (entries up to ~0.1; the dead latents' AuxK-only rows ~1e-4). bf16-rounded activations (2^-9 relative) fall
# outside it, in the main top-k and in AuxK's alike (checked by leaving either recompute out; asserted for the first).
RTOL, ATOL = 1e-5, 1e-7


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def enc_and_xc(p, x):
    """[W_enc | b_enc] and [x - b_dec | 1] in float64: their product is the exact pre-activations."""
    enc = torch.cat([p["W_enc"], p["b_enc"][:, None]], 1).double()
    return enc, torch.cat([x - p["b_dec"], torch.ones(x.shape[0], 1)], 1).double()


def by_latent(out):
    """idx and acts with each row sorted by latent, so two top-k outputs in different orders compare."""
    idx, order = out["idx"].sort(1)
    return idx, out["acts"].gather(1, order)


@pytest.mark.parametrize("n_dead", [0, 10, 20])
def test_unambiguous_topk_gives_the_fp32_losses_and_gradients(n_dead):
    """Known answer: latents 0..63 are orthonormal encoder rows and each token is a combination (coefficients 1..2)
    of k of them; latents 64..127 have rows of norm 0.05. The k-th pre-activation beats the (k+1)-th by > 0.5
    (asserted), far beyond bf16's error, so bf16 chooses fp32's set and, the values being recomputed in fp32, gives
    the same losses and gradients (RTOL, ATOL). Dead latents (10: the few-dead column path; 20: the masked path)
    are all in AuxK's choice (k_aux = min(d // 2, n_dead) = n_dead), so it is unambiguous too."""
    d, m, k, B = 64, 128, 4, 64
    g = torch.Generator().manual_seed(0)
    p = init_params(d, m, seed=1)
    q = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0].T.float()
    p["W_enc"] = torch.cat([q, 0.05 * F.normalize(torch.randn(m - d, d, generator=g), dim=1)])
    p["b_enc"], p["b_dec"] = 0.01 * torch.randn(m, generator=g), 0.01 * torch.randn(d, generator=g)
    chosen = torch.rand(B, d, generator=g).argsort(1)[:, :k]
    x = torch.einsum("bk,bkd->bd", torch.rand(B, k, generator=g) + 1, q[chosen]) + 0.01 * torch.randn(B, d, generator=g)
    dead = torch.zeros(m, dtype=torch.bool)
    dead[d + torch.randperm(m - d, generator=g)[:n_dead]] = True
    enc, xc = enc_and_xc(p, x)
    exact = (xc @ enc.T).sort(1, descending=True).values
    assert (exact[:, k - 1] - exact[:, k]).min() > 0.5

    o32 = loss_and_grads(p, x, k, dead, auxk_alpha=0.25)
    o16 = loss_and_grads(p, x, k, dead, auxk_alpha=0.25, matmul_dtype="bfloat16")
    (idx32, acts32), (idx16, acts16) = by_latent(o32), by_latent(o16)
    assert torch.equal(idx16, idx32) and o16["n_dead"] == n_dead
    torch.testing.assert_close(acts16, acts32, rtol=RTOL, atol=ATOL)
    for n in ("fvu", "auxk", "W_dec_parallel"):
        torch.testing.assert_close(o16[n], o32[n], rtol=RTOL, atol=ATOL, msg=n)
    for n in ("W_enc", "b_enc", "W_dec", "b_dec"):
        torch.testing.assert_close(o16["grads"][n], o32["grads"][n], rtol=RTOL, atol=ATOL, msg=n)
    if n_dead:
        assert o16["auxk"] > 0
    # The tolerance would catch activations left at their bf16 values.
    bf16_acts = (xc.bfloat16() @ enc.bfloat16().T).double().gather(1, idx16).relu()
    assert not torch.allclose(bf16_acts, acts16.double(), rtol=RTOL, atol=ATOL)


def test_bf16_choice_differs_from_fp32_only_near_ties():
    """Random data (Gaussian tokens, random biases): bf16's set differs from fp32's in a few rows, and every latent
    it picks that fp32 did not has an exact (float64) pre-activation within 2^-7 s of fp32's k-th largest, s the
    row's largest sum of |terms| (sum_i |xc_i enc_li|). Why 2^-7: bf16 rounds each input to 2^-9 relative, so a
    term is off by ~2^-8 of its size and a swap needs the two latents' errors to bridge the gap; measured here at
    most 2^-9.2 s. Its activations are the exact pre-activations (fp32 rounding: atol 1e-5 on values ~1)."""
    d, m, k, B = 64, 512, 16, 256
    g = torch.Generator().manual_seed(10)
    p = init_params(d, m, seed=0)
    p["b_enc"] = 0.1 * torch.randn(m, generator=g)
    x = torch.randn(B, d, generator=g) * (torch.rand(d, generator=g) * 2 + 0.1) + 0.5
    o32 = loss_and_grads(p, x, k)
    o16 = loss_and_grads(p, x, k, matmul_dtype="bfloat16")
    enc, xc = enc_and_xc(p, x)
    exact = xc @ enc.T
    scale = (xc.abs() @ enc.abs().T).amax(1, keepdim=True)
    kth = exact.gather(1, o32["idx"]).amin(1, keepdim=True)
    in32 = torch.zeros(B, m, dtype=torch.bool).scatter_(1, o32["idx"], True)
    extra = torch.zeros(B, m, dtype=torch.bool).scatter_(1, o16["idx"], True) & ~in32
    assert 0 < int(extra.sum()) < 0.05 * B * k, "a few swaps: the test must see some, and only a few"
    shortfall = ((kth - exact) / scale)[extra]
    assert shortfall.max() < 2**-7, float(shortfall.max())
    torch.testing.assert_close(o16["acts"].double(), exact.gather(1, o16["idx"]).relu(), rtol=0, atol=1e-5)


def sparse_batches(n, batch=128, d=64, n_feats=256, active=4, seed=0):
    """Tokens are sparse non-negative combinations (coefficients 0.5..1.5) of 256 fixed unit features."""
    g = torch.Generator().manual_seed(seed)
    feats = F.normalize(torch.randn(n_feats, d, generator=g), dim=1)
    out = []
    for _ in range(n):
        idx = torch.rand(batch, n_feats, generator=g).argsort(1)[:, :active]
        out.append(torch.einsum("ba,bad->bd", torch.rand(batch, active, generator=g) + 0.5, feats[idx]))
    return out


def test_training_in_bf16_reaches_the_fp32_explained_variance():
    """Same seed, same 1000 batches (d_in 64, d_sae 512, k 8, dead latents and AuxK on): held-out EV = 1 - FVU
    within 0.005 of fp32's (measured: 0.0015, 0.0013, 0.00001 over three data seeds, at EV ~0.897; different
    seeds of fp32 itself differ by ~0.002), and training really learnt (EV > 0.85). The bf16 copy of the encoder
    follows the fp32 one after every step."""
    data = sparse_batches(1004)
    held = torch.cat(data[1000:])
    kw = dict(lr=3e-3, seed=0, dead_tokens_threshold=128 * 50, log_every=250)
    res = {md: train_topk(data[:1000], 64, 512, 8, matmul_dtype=md, **kw) for md in ("float32", "bfloat16")}
    ev = {}
    for md, r in res.items():
        assert r.matmul_dtype == md
        e = held - r.reconstruct(held)
        ev[md] = 1 - float(e.pow(2).sum() / (held - held.mean(0)).pow(2).sum())
    assert ev["float32"] > 0.85 and max(c["n_dead"] for c in res["float32"].curve) > 0
    assert abs(ev["bfloat16"] - ev["float32"]) < 0.005, ev

    trainer = TopKTrainer(64, 512, 8, lr=3e-3, matmul_dtype="bfloat16")
    for x in data[:3]:
        trainer.step(x)
    assert trainer._buf.dtype == torch.bfloat16
    assert torch.equal(trainer.p["enc_bf16"], trainer.p["enc"].bfloat16())


@pytest.mark.parametrize("value", ["bf16", "float16", "Float32", None, torch.bfloat16])
def test_bad_matmul_dtype_raises(value):
    match = r"parameter 'matmul_dtype' must be one of float32, bfloat16, auto; got"
    with pytest.raises(ParameterError, match=match):
        TopKTrainer(16, 64, 4, matmul_dtype=value)
    with pytest.raises(ParameterError, match=match):
        train_topk([torch.randn(8, 16)], 16, 64, 4, matmul_dtype=value)
    with pytest.raises(ParameterError, match=match):
        loss_and_grads(init_params(16, 64), torch.randn(8, 16), 4, matmul_dtype=value)


def test_auto_resolves_by_hardware_and_dtype(monkeypatch):
    """ "auto" is bf16 only where bf16 is native and the parameters are fp32 (a float64 run asks for precision)."""
    assert bf16_is_fast("meta") is False and isinstance(bf16_is_fast(), bool)
    for fast, dtype, want in [
        (True, torch.float32, "bfloat16"),
        (False, torch.float32, "float32"),
        (True, torch.float64, "float32"),
    ]:
        monkeypatch.setattr(topk, "bf16_is_fast", lambda device="cpu", fast=fast: fast)
        assert TopKTrainer(16, 64, 4, dtype=dtype, matmul_dtype="auto").matmul_dtype == want
        res = train_topk([torch.randn(8, 16, dtype=dtype)], 16, 64, 4, dtype=dtype, matmul_dtype="auto")
        assert res.matmul_dtype == want
