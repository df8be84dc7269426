"""Stored TopK codes (rsae_utils.sae.codes): what reads them gets the numbers it would get by encoding, and the
artifact is reused, detected when damaged, and keyed by the SAE's contents."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _tiny_model import tiny_model, tiny_windows
from sae_lens import StandardSAE, StandardSAEConfig

from rsae_utils.autointerp.examples import encode_sparse
from rsae_utils.errors import ParameterError
from rsae_utils.sae import codes as C
from rsae_utils.sae.cache import token_mask
from rsae_utils.sae.harvest import harvest
from rsae_utils.sae.metrics import plain_topk, reconstruct, reconstruction_metrics
from rsae_utils.sae.topk import TopKResult, bf16_is_fast, init_params, to_sae_lens
from rsae_utils.store import cached_artifact, content_hash
from rsae_utils.studies.critique.run import diagnostics_row

LAYER = 2


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    meta = {"model": "tiny-test", "variant": "trained", "seed": 0, "corpus_sha256": "abc"}
    return harvest(tiny_model(), tiny_windows(n_train=4, n_test=6), [LAYER], tmp_path_factory.mktemp("c"), meta)


def topk_sae(d: int, seed: int, k: int = 4):
    p = init_params(d, 8 * d, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    p["b_enc"] = 0.05 * torch.randn(8 * d, generator=gen)
    p["b_dec"] = 0.1 * torch.randn(d, generator=gen)
    return to_sae_lens(TopKResult(**p, k=k))


def saved(sae, folder):
    """An SAE folder as notebook 03 leaves it: the sae-lens files under a verified manifest."""
    cached_artifact(folder, {"seed": float(sae.b_dec.sum())}, lambda tmp: sae.save_model(tmp) and None)
    return folder


def test_codes_equal_a_fresh_encoding_everywhere_they_are_read(cache):
    acts, toks = cache.acts(LAYER, "test"), cache.tokens("test")
    sae = topk_sae(cache.d_model, seed=1)
    # fp32 selection: the codes are exactly what each reader would encode (bf16 selection: the next test)
    codes = C.encode_codes(sae, acts, batch_tokens=50, matmul_dtype="float32")  # chunks that cut windows too
    n_seq, ctx = toks.shape
    assert codes.idx.shape == codes.vals.shape == (n_seq, ctx, 4)
    assert (codes.vals >= 0).all() and (codes.idx < sae.cfg.d_sae).all()
    mask = token_mask(toks, [int(toks[0, 0])])
    assert not mask.all() and mask.any()
    # notebook 03's metrics
    fresh = reconstruction_metrics(sae, acts, mask=mask)
    stored = reconstruction_metrics(sae, acts, mask=mask, codes=codes)
    for key in fresh:
        assert stored[key] == pytest.approx(fresh[key], rel=1e-6, abs=1e-7), key
    # notebook 04's and 08's sparse activations (max_seqs: notebook 08's cut)
    for max_seqs in (None, 3):
        a = encode_sparse(sae, acts, toks, window_len=8, chunk_tokens=64, max_seqs=max_seqs)
        b = encode_sparse(sae, acts, toks, window_len=8, chunk_tokens=64, max_seqs=max_seqs, codes=codes)
        np.testing.assert_array_equal(a.flat, b.flat)
        np.testing.assert_array_equal(a.latent, b.latent)
        np.testing.assert_allclose(a.value, b.value, rtol=1e-6, atol=1e-7)
    # notebook 08's diagnostics
    x = acts.reshape(-1, cache.d_model)[mask.reshape(-1)]
    torch.testing.assert_close(C.reconstruct_from_codes(sae, codes, mask), reconstruct(sae, x), rtol=1e-5, atol=1e-6)
    excl = [int(toks[0, 0])]
    d0, d1 = diagnostics_row(sae, acts, toks, excl), diagnostics_row(sae, acts, toks, excl, codes=codes)
    for key in d0:
        assert d1[key] == pytest.approx(d0[key], rel=1e-5, abs=1e-6), key


def test_codes_of_another_sae_are_refused_where_they_cannot_apply(cache):
    relu = StandardSAE(StandardSAEConfig(d_in=cache.d_model, d_sae=2 * cache.d_model))
    codes = C.encode_codes(topk_sae(cache.d_model, seed=1), cache.acts(LAYER, "test"))
    assert C.encode_codes(relu, cache.acts(LAYER, "test")) is None
    with pytest.raises(ValueError, match="not plain TopK"):
        reconstruction_metrics(relu, cache.acts(LAYER, "test"), codes=codes)
    with pytest.raises(ValueError, match="not plain TopK"):
        encode_sparse(relu, cache.acts(LAYER, "test"), cache.tokens("test"), window_len=8, codes=codes)


def test_stored_codes_are_reused_checked_and_keyed_by_the_sae(cache, tmp_path, monkeypatch):
    sae = topk_sae(cache.d_model, seed=2)
    folder = saved(sae, tmp_path / "L02-topk")
    before = content_hash(folder)
    first = C.load_codes(sae, folder, cache, LAYER)
    where = C.codes_dir(folder, "test")
    assert where.parent == folder.parent and where.exists()
    assert content_hash(folder) == before  # the SAE folder itself is untouched
    ref = C.encode_codes(sae, cache.acts(LAYER, "test"))
    assert ref is not None and torch.equal(first.idx, ref.idx) and torch.equal(first.vals, ref.vals)

    calls = []
    real = C.encode_codes
    monkeypatch.setattr(C, "encode_codes", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = C.load_codes(sae, folder, cache, LAYER)
    assert not calls and torch.equal(again.idx, first.idx)  # read, not recomputed
    (where / "vals.npy").write_bytes(b"damaged")
    with pytest.warns(UserWarning, match="rebuilding"):
        repaired = C.load_codes(sae, folder, cache, LAYER)
    assert calls == [1] and torch.equal(repaired.vals, first.vals)  # a damaged copy is rebuilt, never read

    other = topk_sae(cache.d_model, seed=3)
    folder2 = saved(other, tmp_path / "L02-topk-b")
    assert not torch.equal(C.load_codes(other, folder2, cache, LAYER).idx, first.idx)
    # The same folder with other weights (a retrained SAE): other contents, other key, new codes.
    (folder / "manifest.json").unlink()
    saved(other, folder)
    with pytest.warns(UserWarning, match="rebuilding"):
        retrained = C.load_codes(other, folder, cache, LAYER)
    assert torch.equal(retrained.idx, C.encode_codes(other, cache.acts(LAYER, "test")).idx)
    relu = StandardSAE(StandardSAEConfig(d_in=cache.d_model, d_sae=2 * cache.d_model))
    assert C.load_codes(relu, folder, cache, LAYER) is None


def test_bf16_selected_codes_hold_exact_activations_of_a_near_top_k(cache):
    """bf16 chooses the latents, fp32 gives their values: every value is the exact pre-activation, every chosen
    latent is within bf16 rounding of the fp32 k-th, and nearly every entry is the fp32 encoding's."""
    acts = cache.acts(LAYER, "test")
    sae = topk_sae(cache.d_model, seed=4, k=8)
    c32 = C.encode_codes(sae, acts, matmul_dtype="float32")
    c16 = C.encode_codes(sae, acts, batch_tokens=50, matmul_dtype="bfloat16")
    W_enc, b_enc, _, b_dec, k = plain_topk(sae)
    x = acts.reshape(-1, cache.d_model).float() - b_dec
    pre = x @ W_enc + b_enc
    idx16, idx32 = c16.idx.reshape(-1, k), c32.idx.reshape(-1, k)
    torch.testing.assert_close(c16.vals.reshape(-1, k), pre.gather(1, idx16).relu(), rtol=1e-5, atol=1e-6)
    kth = pre.gather(1, idx32).min(1).values
    slack = 2**-7 * (x.abs() @ W_enc.abs() + b_enc.abs()).max(1).values  # bf16's rounding of both operands
    assert (pre.gather(1, idx16).min(1).values >= kth - slack).all()
    same = (idx16.sort(1).values == idx32.sort(1).values).float().mean().item()
    assert same > 0.95
    ev = [reconstruction_metrics(sae, acts, codes=c)["explained_variance"] for c in (c16, c32)]
    assert ev[0] == pytest.approx(ev[1], abs=1e-3)
    assert C.select_dtype(sae, "auto") == ("bfloat16" if bf16_is_fast() else "float32")
    with pytest.raises(ParameterError, match="matmul_dtype"):
        C.select_dtype(sae, "half")
