"""The fast TopK trainer against a plain dense autograd TopK SAE with the same rule, sparsify and sae-lens.

Tiny shapes, float64 where trajectories are compared (so float rounding never flips a top-k choice), one thread
(these tensors are far too small to share, and on a busy 2-core machine every OpenMP region waits for a core).
"""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F

from rsae_utils.errors import ParameterError
from rsae_utils.sae.spec import paper_lr
from rsae_utils.sae.topk import (
    TopKResult,
    TopKTrainer,
    init_params,
    loss_and_grads,
    params_from_sae_lens,
    row_sums,
    to_sae_lens,
    topk_select,
    train_topk,
)

F64 = torch.float64
HAS_SPARSIFY = importlib.util.find_spec("sparsify") is not None


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def dense_loss(p, x, k, dead=None, auxk_alpha=1 / 32):
    """The rule written plainly: dense latents, dense decoder, autograd. Returns (loss, fvu, auxk, z)."""
    pre = F.relu((x - p["b_dec"]) @ p["W_enc"].T + p["b_enc"])
    vals, idx = pre.topk(k, dim=1, sorted=False)
    z = torch.zeros_like(pre).scatter(1, idx, vals)
    e = x - (z @ p["W_dec"] + p["b_dec"])
    total_var = (x - x.mean(0)).pow(2).sum()
    fvu = e.pow(2).sum() / total_var
    auxk = fvu.new_zeros(())
    if dead is not None and auxk_alpha > 0 and int(dead.sum()) > 0:
        n_dead, half = int(dead.sum()), x.shape[1] // 2
        a_vals, a_idx = torch.where(dead[None], pre, -math.inf).topk(min(half, n_dead), dim=1, sorted=False)
        e_hat = torch.zeros_like(pre).scatter(1, a_idx, a_vals) @ p["W_dec"]
        auxk = min(n_dead / half, 1.0) * (e_hat - e.detach()).pow(2).sum() / total_var
    return fvu + auxk_alpha * auxk, fvu, auxk, z


def toy_batches(n, batch=96, d=16, n_feats=24, active=3, seed=0, dtype=F64):
    """Sparse non-negative combinations of a few fixed directions plus an offset: structure that kills latents."""
    g = torch.Generator().manual_seed(seed)
    feats = F.normalize(torch.randn(n_feats, d, generator=g, dtype=dtype), dim=1)
    out = []
    for _ in range(n):
        idx = torch.rand(batch, n_feats, generator=g).argsort(1)[:, :active]
        coef = torch.rand(batch, active, generator=g, dtype=dtype) + 0.5
        out.append(torch.einsum("ba,bad->bd", coef, feats[idx]) + 0.3)
    return out


def random_params(d, m, seed, dtype=F64):
    p = init_params(d, m, seed, dtype)
    g = torch.Generator().manual_seed(seed + 1)
    p["b_enc"] = 0.1 * torch.randn(m, generator=g, dtype=dtype)
    p["b_dec"] = 0.1 * torch.randn(d, generator=g, dtype=dtype)
    return p


def test_topk_select_matches_torch_topk():
    g = torch.Generator().manual_seed(0)
    for rows, n, k in [(50, 4096, 32), (7, 2304, 32), (30, 1000, 5), (5, 64, 8)]:
        v = torch.randn(rows, n, generator=g)
        vals, idx = topk_select(v, k)
        ref_vals, ref_idx = v.topk(k, dim=1)
        assert torch.equal(vals.sort(1).values, ref_vals.sort(1).values)
        assert torch.equal(idx.sort(1).values, ref_idx.sort(1).values)
        assert torch.equal(v.gather(1, idx), vals)


def test_row_sums_csr_equals_embedding_bag():
    """The CPU path (CSR product into a reused buffer, here full of NaN) equals the embedding_bag path."""
    g = torch.Generator().manual_seed(0)
    src, lat = torch.randn(40, 8, generator=g, dtype=F64), torch.randint(0, 30, (200,), generator=g)
    weights, rows = torch.randn(200, generator=g, dtype=F64), torch.randint(0, 40, (200,), generator=g)
    order = torch.argsort(lat, stable=True)
    counts = torch.bincount(lat, minlength=33)  # the last latents have empty bags
    ref = torch.zeros(33, 8, dtype=F64).index_add_(0, lat, weights[:, None] * src[rows])
    bag = row_sums(rows[order], src, counts, weights[order], csr=False)
    csr = row_sums(rows[order], src, counts, weights[order], out=torch.full((33, 8), math.nan, dtype=F64), csr=True)
    torch.testing.assert_close(bag, ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(csr, ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    ("n_dead", "dtype", "atol"),
    [(0, F64, 1e-12), (3, F64, 1e-12), (20, F64, 1e-12), (100, F64, 1e-12), (20, torch.float32, 2e-6)],
)
def test_gradients_match_dense_autograd(n_dead, dtype, atol):
    """(a) Losses and every gradient equal the dense autograd SAE's (float64: 1e-12; float32: 2e-6), for no dead
    latents, fewer dead than k_aux (scaled loss), the few-dead column path and the in-place masked path."""
    d, m, k, B = 16, 128, 8, 64
    p = random_params(d, m, seed=3, dtype=dtype)
    x = toy_batches(1, B, d, seed=4, dtype=dtype)[0] + 0.2 * torch.randn(B, d, dtype=dtype)
    dead = torch.zeros(m, dtype=torch.bool)
    dead[torch.randperm(m, generator=torch.Generator().manual_seed(5))[:n_dead]] = True
    alpha = 0.25  # large, so that AuxK's share of the gradient is visible at the tolerance
    out = loss_and_grads(p, x, k, dead, auxk_alpha=alpha)

    ref = {n: p[n].clone().requires_grad_() for n in ("W_enc", "b_enc", "W_dec", "b_dec")}
    loss, fvu, auxk, _ = dense_loss(ref, x, k, dead, auxk_alpha=alpha)
    loss.backward()
    assert out["n_dead"] == n_dead
    torch.testing.assert_close(out["fvu"], fvu.detach(), atol=atol, rtol=0)
    torch.testing.assert_close(out["auxk"], auxk.detach(), atol=atol, rtol=0)
    for n in ref:
        torch.testing.assert_close(out["grads"][n], ref[n].grad, atol=atol, rtol=0, msg=n)
    parallel = (ref["W_dec"].grad * p["W_dec"]).sum(1)
    torch.testing.assert_close(out["W_dec_parallel"], parallel, atol=atol, rtol=0)
    if n_dead:  # AuxK really reaches the dead latents' encoder rows (sparsify 1.3.3's fused encoder drops this)
        assert out["auxk"] > 0 and out["grads"]["W_enc"][dead].abs().sum() > 0


def dense_reference_train(p0, batches, k, lr, threshold, alpha):
    """sparsify's training loop over the dense autograd SAE: torch Adam, b_dec = first batch mean, unit decoder rows
    (gradient component along each row removed), latents dead after ``threshold`` tokens without firing."""
    p = {n: t.clone().requires_grad_() for n, t in p0.items()}
    opt = torch.optim.Adam(list(p.values()), lr=lr)
    since = torch.zeros(p0["W_enc"].shape[0], dtype=torch.int64)
    n_dead_seen = 0
    for i, x in enumerate(batches):
        if i == 0:
            p["b_dec"].data.copy_(x.mean(0))
        dead = since > threshold
        n_dead_seen = max(n_dead_seen, int(dead.sum()))
        loss, *_, z = dense_loss(p, x, k, dead, alpha)
        loss.backward()
        with torch.no_grad():
            W, gW = p["W_dec"], p["W_dec"].grad
            gW -= (gW * W).sum(1, keepdim=True) * W
            opt.step()
            opt.zero_grad()
            W /= W.norm(dim=1, keepdim=True) + torch.finfo(W.dtype).eps
            since += x.shape[0]
            since[(z > 0).any(0)] = 0
    return {n: t.detach() for n, t in p.items()}, n_dead_seen


def test_training_matches_dense_reference_trainer():
    """(b) Same init, same batches, 300 steps with dead latents and AuxK: the same weights (float64, atol 1e-9)."""
    d, m, k = 16, 64, 4
    batches = toy_batches(300, seed=1)
    p0 = init_params(d, m, seed=2, dtype=F64)
    kw = dict(lr=3e-3, dead_tokens_threshold=96 * 15, auxk_alpha=1 / 32)
    res = train_topk(batches, d, m, k, init_from=p0, center_b_dec=True, dtype=F64, log_every=50, **kw)
    ref, n_dead_seen = dense_reference_train(p0, batches, k, kw["lr"], kw["dead_tokens_threshold"], kw["auxk_alpha"])
    assert n_dead_seen > 0 and max(c["n_dead"] for c in res.curve) > 0, "the run must exercise AuxK"
    assert res.curve[-1]["fvu"] < 0.5 * res.curve[0]["fvu"]
    for n in ref:
        torch.testing.assert_close(getattr(res, n), ref[n], atol=1e-9, rtol=0, msg=n)


@pytest.mark.skipif(not HAS_SPARSIFY, reason="eai-sparsify not installed")
def test_training_matches_sparsify_sparse_coder():
    """(b) Against sparsify's own SparseCoder (FVU, no AuxK: sparsify's fused encoder ignores the AuxK encoder
    gradient, which this trainer keeps): same init and batches, 200 steps of its loop, the same weights."""
    from sparsify import SparseCoder, SparseCoderConfig

    d, m, k, lr = 16, 64, 4, 3e-3
    batches = toy_batches(200, seed=6)
    p0 = init_params(d, m, seed=7, dtype=F64)
    sc = SparseCoder(d, SparseCoderConfig(num_latents=m, k=k), dtype=F64)
    with torch.no_grad():
        sc.encoder.weight.copy_(p0["W_enc"])
        sc.encoder.bias.copy_(p0["b_enc"])
        sc.W_dec.copy_(p0["W_dec"])
        sc.b_dec.copy_(p0["b_dec"])
    opt = torch.optim.Adam(sc.parameters(), lr=lr)
    for i, x in enumerate(batches):  # sparsify's Trainer.fit, FVU loss, without its warm-up schedule
        if i == 0:
            sc.b_dec.data = x.mean(0)
        sc.set_decoder_norm_to_unit_norm()
        sc(x).fvu.backward()
        sc.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad()
    sc.set_decoder_norm_to_unit_norm()
    res = train_topk(batches, d, m, k, lr=lr, init_from=p0, center_b_dec=True, dtype=F64, auxk_alpha=0.0)
    for mine, theirs in [
        (res.W_enc, sc.encoder.weight),
        (res.b_enc, sc.encoder.bias),
        (res.W_dec, sc.W_dec),
        (res.b_dec, sc.b_dec),
    ]:
        torch.testing.assert_close(mine, theirs.detach(), atol=1e-9, rtol=0)


def test_sae_lens_export_round_trip(tmp_path):
    """(c) The exported SAE saves and loads in plain sae-lens and reconstructs like this module's forward."""
    from sae_lens import SAE

    d, m, k = 16, 64, 4
    batches = [b.float() for b in toy_batches(30, seed=8)]
    res = train_topk(batches, d, m, k, lr=3e-3, seed=0)
    sae = to_sae_lens(res, metadata={"hook_name": "blocks.0.hook_resid_post"})
    sae.save_model(tmp_path)
    loaded = SAE.load_from_disk(str(tmp_path))
    assert loaded.cfg.architecture() == "topk" and loaded.cfg.k == k and loaded.cfg.d_sae == m
    x = torch.cat(batches[-3:])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), res.reconstruct(x), atol=1e-5, rtol=1e-5)
        acts, idx = res.encode(x)
        dense = torch.zeros(x.shape[0], m).scatter(1, idx, acts)
        torch.testing.assert_close(loaded.encode(x), dense, atol=1e-5, rtol=1e-5)


def test_init_from_sae_lens_keeps_its_function():
    """Starting from a sae-lens TopK training SAE (decoder norm 0.1, acts rescaled by it) keeps the same map."""
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    torch.manual_seed(0)
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=16, d_sae=64, k=4, dtype="float32", device="cpu"))
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
        sae.b_dec.normal_(0, 0.1)
    x = torch.randn(40, 16)
    res = TopKResult(**params_from_sae_lens(sae), k=4)
    with torch.no_grad():
        torch.testing.assert_close(res.reconstruct(x), sae(x), atol=1e-5, rtol=1e-5)
    trainer = TopKTrainer(16, 64, 4, init_from=sae)
    assert not trainer.center_b_dec and torch.allclose(trainer.p["W_dec"].norm(dim=1), torch.ones(64))


def test_auxk_revives_dead_latents():
    """(d) Known answer: half the latents start dead (encoder rows scaled by 0.02, so never in the top-k). Without
    AuxK they receive no gradient, stay exactly as they were and never fire; with AuxK most of them fire again and
    the reconstruction improves."""
    d, m, k, B = 16, 32, 2, 128
    g = torch.Generator().manual_seed(1)
    feats = F.normalize(torch.randn(32, d, generator=g), dim=1)
    batches = []
    for _ in range(250):
        idx = torch.rand(B, 32, generator=g).argsort(1)[:, :2]
        batches.append(torch.einsum("bk,bkd->bd", torch.rand(B, 2, generator=g) + 0.5, feats[idx]))
    p = init_params(d, m, 0)
    p["W_enc"][16:] *= 0.02
    p["W_dec"][16:] = F.normalize(torch.randn(16, d, generator=g), dim=1)
    test_x = torch.cat(batches[-20:])

    def fired(res):
        acts, idx = res.encode(test_x)
        return torch.zeros(m, dtype=torch.bool).index_fill_(0, idx[acts > 0], True)

    common = dict(lr=1e-2, init_from=p, center_b_dec=True, dead_tokens_threshold=5 * B, log_every=50)
    off = train_topk(batches, d, m, k, auxk_alpha=0.0, **common)
    on = train_topk(batches, d, m, k, auxk_alpha=1 / 32, **common)
    assert torch.equal(off.W_enc[16:], p["W_enc"][16:]) and not fired(off)[16:].any()
    assert off.curve[-1]["n_dead"] == 16
    assert on.curve[-1]["n_dead"] <= 6 and int(fired(on)[16:].sum()) >= 10
    assert on.curve[-1]["fvu"] < 0.6 * off.curve[-1]["fvu"]


def test_paper_lr_and_curve():
    assert paper_lr(2**14) == pytest.approx(2e-4) and paper_lr(4 * 2**14) == pytest.approx(1e-4)
    res = train_topk(toy_batches(25, dtype=torch.float32), 16, 64, 4, log_every=10)
    assert [c["step"] for c in res.curve] == [10, 20, 25] and res.tokens == 25 * 96 and res.steps == 25
    assert res.curve[0]["lr"] == pytest.approx(paper_lr(64))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(d_in=16, d_sae=64, k=64), "k"),
        (dict(d_in=16, d_sae=64, k=100), "k"),
        (dict(d_in=16, d_sae=64, k=0), "k"),
        (dict(d_in=16, d_sae=0, k=4), "d_sae"),
        (dict(d_in=0, d_sae=64, k=4), "d_in"),
        (dict(d_in=16, d_sae=64, k=4, dead_tokens_threshold=-1), "dead_tokens_threshold"),
        (dict(d_in=16, d_sae=64, k=4, lr=-1.0), "lr"),
        (dict(d_in=16, d_sae=64, k=4, auxk_alpha=-1.0), "auxk_alpha"),
    ],
)
def test_bad_parameters_raise(kwargs, name):
    """(e) A clear ValueError naming the parameter and the allowed values."""
    with pytest.raises(ValueError, match=rf"parameter '{name}'.* must .*(>=|>|in 1\.\.)"):
        TopKTrainer(**kwargs)


@pytest.mark.parametrize("shape", [(8, 15), (8,), (1, 16), (2, 3, 16)])
def test_bad_batch_shape_raises(shape):
    with pytest.raises(ParameterError, match=r"parameter 'batch' must be a tensor of shape \(tokens >= 2, d_in=16\)"):
        train_topk([torch.randn(*shape)], 16, 64, 4)
