"""The mean-field prediction of notebook 06 against simulated random networks with known per-tensor stds: the
residual's growth and the token-identity share it predicts, measured on the same networks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from transformer_lens import HookedTransformer

from rsae_utils.studies.why.meanfield import (
    act_kernel,
    moments_from_record,
    moments_record,
    predict,
    retention_report,
    same_token_rate,
    scaled_embedding,
    scaled_outputs,
    weight_moments,
)
from rsae_utils.studies.why.residual_stats import token_share
from rsae_utils.subject.models import tiny_random_config
from rsae_utils.subject.neox_init import neox_at_init

VOCAB, CTX, WINDOWS = 300, 64, 64
NEOX_SHAPE = {"num_hidden_layers": 4, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 256}


def llama() -> HookedTransformer:
    return HookedTransformer(tiny_random_config(VOCAB))


def neox() -> HookedTransformer:
    return neox_at_init(VOCAB, shape=NEOX_SHAPE, n_ctx=128)[0]


def draw_(model: HookedTransformer, stds: dict[str, float], seed: int) -> None:
    """Every matrix N(0, stds[name] or 0.05), gains N(1, 0.2), biases 0."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            key = name.split(".")[-1].lstrip("_")
            if key == "w":
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif key.startswith("b"):
                p.zero_()
            else:
                p.copy_(stds.get(key, 0.05) * torch.randn(p.shape, generator=gen))


def measured(model: HookedTransformer, seed: int) -> np.ndarray:
    """(layers, 2): rms residual norm and chance-adjusted token share, first position left out."""
    toks = torch.randint(0, VOCAB, (WINDOWS, CTX), generator=torch.Generator().manual_seed(100 + seed))
    mask = torch.ones_like(toks, dtype=torch.bool)
    mask[:, 0] = False
    _, cache = model.run_with_cache(toks, names_filter=lambda n: n.endswith("resid_post"))
    rows = []
    for layer in range(model.cfg.n_layers):
        x = cache[f"blocks.{layer}.hook_resid_post"]
        rows.append((float(x[:, 1:].pow(2).sum(-1).mean().sqrt()), token_share(x, toks, mask)["share_adj"]))
    return np.array(rows)


def compare(make, stds: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    meas, model = [], None
    for seed in range(2):
        model = make()
        draw_(model, stds, seed)
        meas.append(measured(model, seed))
    pred = predict(model, n_ctx=CTX, same_token=1 / VOCAB)
    pred = pred[pred.layer >= 0]
    return pred[["rms", "token_share"]].to_numpy(), np.mean(meas, 0)


def test_kernel_known_values():
    rho = np.array([1.0, 0.0, -1.0])
    relu = act_kernel("relu", 2.0, rho)
    # E[relu(z)^2] = var / 2; independent: E[relu]^2 = var / (2 pi); rho = -1: never both positive
    assert relu[[0, 2]] == pytest.approx([1.0, 0.0], abs=1e-6)
    assert relu[1] == pytest.approx(2.0 / (2 * math.pi), rel=0.03)  # the kink limits the quadrature


@pytest.mark.parametrize("make", [llama, neox], ids=["llama", "neox"])
def test_growth_of_a_block_dominated_stream(make):
    # a small embedding against the blocks' writes: the residual grows, the token is lost
    pred, meas = compare(make, {"W_E": 0.02, "W_Q": 0.02, "W_K": 0.02})
    assert pred[:, 0] / meas[:, 0] == pytest.approx(1.0, abs=0.08)
    assert np.all(pred[:, 1] <= meas[:, 1] + 0.02)  # a lower bound of the token share ...
    assert np.all(meas[:, 1] - pred[:, 1] < 0.1)  # ... and a tight one here


def test_an_embedding_dominated_stream_keeps_the_token():
    pred, meas = compare(neox, {"W_E": 1.0})
    assert pred[:, 0] / meas[:, 0] == pytest.approx(1.0, abs=0.02)
    assert pred[:, 1] == pytest.approx(meas[:, 1], abs=0.01)
    assert np.all(meas[:, 1] > 0.95)


@pytest.mark.parametrize("make", [llama, neox], ids=["llama", "neox"])
def test_sharp_attention_growth_within_a_fifth(make):
    # large query/key weights: softmax picks ~one key (participation 1); the growth is overestimated by < 20%
    stds = {"W_E": 0.05, "W_Q": 0.3, "W_K": 0.3, "W_V": 0.2, "W_O": 0.2, "W_in": 0.15, "W_gate": 0.15, "W_out": 0.15}
    pred, meas = compare(make, stds)
    assert np.all((pred[:, 0] / meas[:, 0] > 0.97) & (pred[:, 0] / meas[:, 0] < 1.2))
    assert np.all(pred[:, 1] <= meas[:, 1] + 0.02)


def test_report_names_the_embedding_and_the_writes():
    model = llama()
    draw_(model, {"W_E": 0.02}, 0)
    pred = predict(model, n_ctx=CTX)
    text = " ".join(retention_report(pred, weight_moments(model), [0, 3]))
    assert "std 0.02" in text and "After block 3" in text
    assert pred.growth.iloc[0] == 1.0 and pred.growth.iloc[-1] > 10


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="n_ctx"):
        predict(llama(), n_ctx=1)


def test_moments_round_trip_and_scaling():
    model = llama()
    mom = weight_moments(model)
    back = moments_from_record(json.loads(json.dumps(moments_record(mom))))
    assert back["embed"] == mom["embed"] and back["blocks"][2]["W_out"] == mom["blocks"][2]["W_out"]
    low = scaled_outputs(mom, 0.5)
    assert low["blocks"][0]["W_O"].std == pytest.approx(0.5 * mom["blocks"][0]["W_O"].std)
    assert low["blocks"][0]["W_V"] == mom["blocks"][0]["W_V"]
    # smaller writes keep more of the token (same embedding, same reads)
    assert predict(low, n_ctx=CTX).token_share.iloc[-1] > predict(mom, n_ctx=CTX).token_share.iloc[-1]
    big = scaled_embedding(mom, 4.0)
    assert predict(big, n_ctx=CTX).token_share.iloc[-1] > predict(mom, n_ctx=CTX).token_share.iloc[-1]


def test_same_token_rate_known_answers():
    toks = torch.tensor([[1, 1, 1, 1], [1, 2, 3, 4]])
    assert same_token_rate(toks) == pytest.approx(0.5)  # all pairs equal in the first window, none in the second
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    assert same_token_rate(toks, mask) == pytest.approx(0.5)
