"""SAE quality metrics: known answers for perfect and zero reconstructions, and the spliced forward."""

from __future__ import annotations

import pytest
import torch
from _tiny_model import tiny_model, tiny_windows
from sae_lens import StandardSAE, StandardSAEConfig

from rsae_utils.plots.sae_metrics import FIGURE_METRICS, plot_grid
from rsae_utils.sae.harvest import harvest
from rsae_utils.sae.metrics import evaluate_variant, reconstruction_metrics, tidy, wide

D = 32
LAYERS = [0, 2]


def identity_sae(d: int = D) -> StandardSAE:
    """relu(x) - relu(-x) = x: a ReLU SAE with 2d latents that reconstructs its input exactly."""
    sae = StandardSAE(StandardSAEConfig(d_in=d, d_sae=2 * d, apply_b_dec_to_input=False))
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], 1))
        sae.W_dec.copy_(torch.cat([eye, -eye], 0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def zero_sae(d: int = D) -> StandardSAE:
    sae = identity_sae(d)
    with torch.no_grad():
        sae.W_dec.zero_()
    return sae


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    model = tiny_model()
    meta = {"model": "tiny-test", "variant": "trained", "seed": 0, "corpus_sha256": "abc"}
    cache = harvest(model, tiny_windows(n_train=8, n_test=8), LAYERS, tmp_path_factory.mktemp("c"), meta)
    return model, cache


def _wide(rows):
    return wide(tidy(rows)).set_index("layer")


def test_perfect_reconstruction(setup):
    model, cache = setup
    w = _wide(evaluate_variant(model, cache, {0: identity_sae(), 2: identity_sae()}))
    for layer in LAYERS:
        r = w.loc[layer]
        assert r.fvu == pytest.approx(0, abs=1e-6) and r.explained_variance == pytest.approx(1, abs=1e-6)
        assert r.cos_sim == pytest.approx(1, abs=1e-6)
        assert r.ce_loss_score == pytest.approx(1, abs=1e-5) and r.kl_div == pytest.approx(0, abs=1e-6)
        assert r.ce_sae == pytest.approx(r.ce_clean, abs=1e-6)
        assert r.l0 == pytest.approx(D, abs=0.5)  # each coordinate is nonzero in exactly one of its two latents


def test_zero_reconstruction_scores_zero(setup):
    model, cache = setup
    w = _wide(evaluate_variant(model, cache, {0: zero_sae(), 2: zero_sae()}))
    for layer in LAYERS:
        r = w.loc[layer]
        assert r.ce_loss_score == pytest.approx(0, abs=1e-6)
        assert r.kl_div == pytest.approx(r.kl_zero_abl, rel=1e-6)
        assert r.fvu > 1.0 and r.cos_sim == pytest.approx(0, abs=1e-6)


def test_clean_ce_matches_full_forward(setup):
    """Resuming from the cached residual gives the clean model's loss: the splice point is right."""
    model, cache = setup
    w = _wide(evaluate_variant(model, cache, {0: identity_sae()}))
    toks = cache.tokens("test")
    ref = model(toks, return_type="loss").item()
    assert w.loc[0].ce_clean == pytest.approx(ref, rel=1e-5)
    # zero-ablating a layer (and everything it carries) gives the model's loss on an all-zero residual stream
    zero_logits = model(torch.zeros(1, toks.shape[1], D), start_at_layer=1)
    lp = torch.log_softmax(zero_logits, -1).expand(toks.shape[0], -1, -1)
    ref0 = -lp[:, :-1].gather(-1, toks[:, 1:, None]).mean().item()
    assert w.loc[0].ce_zero_abl == pytest.approx(ref0, rel=1e-5)


def test_reconstruction_metrics_known_values():
    torch.manual_seed(0)
    x = torch.randn(500, D)
    m = reconstruction_metrics(identity_sae(), x, batch_tokens=128)
    assert m["l1"] == pytest.approx(x.abs().sum(-1).mean().item(), rel=1e-5)
    assert m["dead_fraction"] == 0.0
    # a latent pair that can never fire: coordinate 0 made always zero
    x[:, 0] = 0.0
    assert reconstruction_metrics(identity_sae(), x)["dead_fraction"] == pytest.approx(2 / (2 * D))
    # reconstructing every token by the mean explains no variance
    mean_sae = zero_sae()
    with torch.no_grad():
        mean_sae.b_dec.copy_(x.mean(0))
    assert reconstruction_metrics(mean_sae, x)["fvu"] == pytest.approx(1.0, abs=1e-5)


def test_tidy_and_figure(setup):
    model, cache = setup
    df = tidy(evaluate_variant(model, cache, {0: identity_sae(), 2: zero_sae()}))
    assert list(df.columns) == ["model", "variant", "layer", "metric", "value"]
    assert set(FIGURE_METRICS) <= set(df.metric)
    fig = plot_grid(df)
    assert len(fig.axes) == len(FIGURE_METRICS)


def test_excluded_tokens_left_out(setup):
    model, cache = setup
    toks = cache.tokens("test")
    drop = [int(toks[0, 0])]
    keep = ~torch.isin(toks, torch.tensor(drop))
    # reconstruction metrics: the same as computing on the kept positions only
    acts = cache.acts(2, "test")
    sae = zero_sae()
    with torch.no_grad():
        sae.b_dec.copy_(acts[keep].mean(0))
    w = _wide(evaluate_variant(model, cache, {2: sae}, exclude_tokens=drop))
    assert w.loc[2].fvu == pytest.approx(1.0, abs=1e-5)  # the mean of the kept rows explains none of their variance
    assert w.loc[2].n_tokens == keep.sum().item() and w.loc[2].n_tokens_spliced == keep.sum().item()


def test_topk_fast_path_equals_sae_lens_dense_encode_decode(monkeypatch):
    """reconstruction_metrics' sparse path for plain TopK SAEs gives sae-lens's dense encode/decode numbers."""
    from rsae_utils.sae import metrics as M
    from rsae_utils.sae.topk import TopKResult, init_params, to_sae_lens

    torch.manual_seed(0)
    p = init_params(24, 96, seed=1)
    p["b_enc"] = 0.1 * torch.randn(96)
    p["b_dec"] = torch.randn(24)
    sae = to_sae_lens(TopKResult(**p, k=5))
    assert M.plain_topk(sae) is not None
    x = torch.randn(3, 50, 24) * 3
    mask = torch.rand(3, 50) > 0.2
    fast = M.reconstruction_metrics(sae, x, batch_tokens=37, mask=mask)
    monkeypatch.setattr(M, "plain_topk", lambda sae: None)
    dense = M.reconstruction_metrics(sae, x, batch_tokens=37, mask=mask)
    assert fast.keys() == dense.keys()
    for key in fast:
        assert fast[key] == pytest.approx(dense[key], rel=1e-5, abs=1e-6), key
    assert fast["l0"] <= 5 and 0 < fast["dead_fraction"] < 1


def test_reconstruct_equals_sae_lens_decode_of_encode():
    """``reconstruct``'s TopK path and its dense path both give sae-lens's ``decode(encode(x))``, in any chunking."""
    from rsae_utils.sae import metrics as M
    from rsae_utils.sae.topk import TopKResult, init_params, to_sae_lens

    torch.manual_seed(0)
    p = init_params(24, 96, seed=2)
    p["b_enc"] = 0.1 * torch.randn(96)
    p["b_dec"] = torch.randn(24)
    topk = to_sae_lens(TopKResult(**p, k=5))
    x = torch.randn(101, 32) * 3
    for sae in (topk, zero_sae(24), identity_sae(24)):
        with torch.no_grad():
            ref = sae.decode(sae.encode(x[:, : sae.cfg.d_in])).float()
        got = M.reconstruct(sae, x[:, : sae.cfg.d_in], batch_tokens=17)
        assert got.shape == ref.shape
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    assert M.plain_topk(topk) is not None
    # A lossy SAE: the comparison above is not trivial.
    assert not torch.allclose(M.reconstruct(topk, x[:, :24]), x[:, :24], atol=1e-2)


def test_topk_path_folds_the_decoder_norm_rescaling_of_sae_lens_trained_saes():
    """sae-lens's trainer saves TopK SAEs that scale pre-activations by the decoder row norms; the sparse path folds
    the norms in and gives sae-lens's activations, latent choice and reconstruction (rows of unequal norms, so the
    rescaling changes which latents win)."""
    from rsae_utils.sae import metrics as M
    from rsae_utils.sae.topk import TopKResult, init_params, to_sae_lens

    torch.manual_seed(0)
    p = init_params(24, 96, seed=3)
    p["b_enc"] = 0.1 * torch.randn(96)
    p["b_dec"] = torch.randn(24)
    sae = to_sae_lens(TopKResult(**p, k=5))
    with torch.no_grad():
        sae.W_dec.mul_(torch.rand(96, 1) * 4 + 0.1)
    sae.cfg.rescale_acts_by_decoder_norm = True
    x = torch.randn(200, 24) * 3
    parts = M.plain_topk(sae)
    assert parts is not None
    acts, idx = M.topk_encode(parts, x)
    with torch.no_grad():
        z = sae.encode(x)
        ref = sae.decode(z)
    dense = torch.zeros_like(z).scatter_(1, idx, acts)
    torch.testing.assert_close(dense, z, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(M.topk_decode(parts, acts, idx), ref, rtol=1e-5, atol=1e-5)
    sae.cfg.rescale_acts_by_decoder_norm = False  # the same weights read without the rescaling choose otherwise
    with torch.no_grad():
        assert not torch.equal(sae.encode(x) > 0, z > 0)
