"""Residual-stream statistics of notebook 06 on data whose answers are known."""

from __future__ import annotations

import math

import pytest
import torch

from rsae_utils.studies.why.residual_stats import (
    effective_dim,
    group_share,
    norm_stats,
    position_share,
    residual_stats,
    token_share,
)


def _tokens(n=64, ctx=16, vocab=20, seed=0):
    return torch.randint(0, vocab, (n, ctx), generator=torch.Generator().manual_seed(seed))


def test_an_exact_function_of_the_token_has_share_one():
    toks = _tokens()
    table = torch.randn(20, 8, generator=torch.Generator().manual_seed(1))
    acts = table[toks]
    out = token_share(acts, toks)
    assert out["share"] == pytest.approx(1.0, abs=1e-9) and out["share_adj"] == pytest.approx(1.0, abs=1e-9)
    assert out["n"] == 64 * 16 and out["n_groups"] == 20
    # a large common offset changes nothing (sums are taken around a shift)
    assert token_share(acts + 1e6, toks)["share"] == pytest.approx(1.0, abs=1e-6)
    # tokens are random across positions: position explains about chance
    pos = position_share(acts)
    assert abs(pos["share_adj"]) < 0.05 and pos["share"] == pytest.approx(pos["chance"], abs=0.03)


def test_noise_explains_chance_and_adjusted_share_is_near_zero():
    toks = _tokens(n=200, ctx=32, vocab=300)
    acts = torch.randn(200, 32, 16, generator=torch.Generator().manual_seed(2))
    out = token_share(acts, toks)
    n, g = 200 * 32, out["n_groups"]
    assert out["chance"] == pytest.approx((g - 1) / (n - 1))
    assert out["share"] == pytest.approx(out["chance"], rel=0.1)
    assert abs(out["share_adj"]) < 0.02


def test_signal_plus_noise_gives_the_signal_share():
    toks = _tokens(n=400, ctx=32, vocab=10)
    gen = torch.Generator().manual_seed(3)
    table = torch.randn(10, 32, generator=gen)  # variance 1 per dim from the token ...
    acts = table[toks] + torch.randn(400, 32, 32, generator=gen)  # ... and 1 from noise
    signal = float((table[toks] - table[toks].reshape(-1, 32).mean(0)).pow(2).sum())
    total = float((acts - acts.reshape(-1, 32).mean(0)).pow(2).sum())
    out = token_share(acts, toks)
    assert out["share"] == pytest.approx(signal / total, abs=0.01)
    assert 0.3 < out["share_adj"] < 0.7


def test_position_share_of_a_positional_signal_and_the_mask():
    toks = _tokens()
    pos_table = torch.randn(16, 8, generator=torch.Generator().manual_seed(4))
    acts = pos_table.expand(64, -1, -1).clone()
    assert position_share(acts)["share"] == pytest.approx(1.0, abs=1e-9)
    # a masked-out outlier does not count
    acts[:, 0] += 1000.0
    mask = torch.ones(64, 16, dtype=torch.bool)
    mask[:, 0] = False
    pos_masked = position_share(acts, mask)
    assert pos_masked["share"] == pytest.approx(1.0, abs=1e-9) and pos_masked["n"] == 64 * 15
    with pytest.raises(ValueError):
        position_share(acts[0])
    with pytest.raises(ValueError):
        group_share(acts, toks[:3])


def test_degenerate_inputs_give_nan_not_errors():
    const = torch.ones(4, 5, 3)
    out = token_share(const, _tokens(n=4, ctx=5))
    assert math.isnan(out["share"]) and out["chance"] <= 1
    assert math.isnan(group_share(const[:1, :1], torch.zeros(1, 1))["share"])


def test_norms_and_effective_dimension():
    gen = torch.Generator().manual_seed(5)
    unit = torch.nn.functional.normalize(torch.randn(100, 10, 6, generator=gen), dim=-1) * 3.0
    ns = norm_stats(unit)
    assert ns["norm_median"] == pytest.approx(3.0, rel=1e-5) and ns["norm_q10"] == pytest.approx(3.0, rel=1e-5)
    iso = torch.zeros(20_000, 12)
    iso[:, :4] = torch.randn(20_000, 4, generator=gen)  # isotropic in 4 of 12 dims
    ed = effective_dim(iso)
    assert ed["effective_dim"] == pytest.approx(4.0, rel=0.05) and ed["top_pc_share"] == pytest.approx(0.25, abs=0.02)
    line = torch.randn(500, 1, generator=gen) * torch.randn(1, 12, generator=gen) + 7.0
    assert effective_dim(line)["effective_dim"] == pytest.approx(1.0, abs=1e-6)


def test_residual_stats_is_one_flat_record():
    toks = _tokens()
    acts = torch.randn(20, 8, generator=torch.Generator().manual_seed(6))[toks]
    rec = residual_stats(acts, toks)
    assert rec["token_share"] == pytest.approx(1.0, abs=1e-9) and rec["n_tokens"] == 64 * 16
    assert all(isinstance(v, (int, float)) for v in rec.values())
    assert {"position_share", "norm_median", "effective_dim", "token_chance"} <= set(rec)
