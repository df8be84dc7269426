"""The dead-latent window: a number of expected activations per latent, not a fraction of the run."""

from __future__ import annotations

import pytest

from rsae_utils.errors import ParameterError
from rsae_utils.sae.spec import DEAD_ACTIVATIONS, SAESpec, dead_window_tokens


def test_window_is_sparsifys_ten_million_tokens_at_the_papers_width_and_k():
    # sparsify: 10M tokens; the paper's Pythia-70M SAE: 64 x 512 latents, k = 32.
    assert dead_window_tokens(64 * 512, 32) == pytest.approx(10_000_000, rel=1e-4)


def test_window_scales_with_width_over_k():
    assert dead_window_tokens(9216, 32) == -(-DEAD_ACTIVATIONS * 9216 // 32)
    assert dead_window_tokens(2 * 9216, 32) == pytest.approx(2 * dead_window_tokens(9216, 32), abs=1)
    assert dead_window_tokens(9216, 16) == pytest.approx(2 * dead_window_tokens(9216, 32), abs=1)


def test_window_does_not_depend_on_the_run_length():
    short = SAESpec(expansion=16, k=32, n_tokens=15_360, batch_size=512)
    long = SAESpec(expansion=16, k=32, n_tokens=1_048_576, batch_size=512)
    assert short.dead_tokens(576) == long.dead_tokens(576)
    # whole batches, at least the expected-activation window
    assert short.dead_tokens(576) % 512 == 0
    assert 0 <= short.dead_tokens(576) - dead_window_tokens(9216, 32) < 512
    # at R = 16, k = 32 the default's budgets (<= 1M tokens) never reach it: AuxK stays off, as sparsify's would
    assert short.dead_tokens(576) > 2_000_000


def test_explicit_window_in_steps_wins():
    spec = SAESpec(expansion=4, k=8, batch_size=128, dead_feature_window=7)
    assert spec.dead_window_steps(32) == 7 and spec.dead_tokens(32) == 7 * 128


def test_bad_width_or_k_is_refused():
    with pytest.raises(ParameterError, match="'d_sae' and 'k'"):
        dead_window_tokens(0, 32)
