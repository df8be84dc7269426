"""Variant -> activation cache -> SAE -> metrics (notebook 03).

``harvest`` (the model's residual stream, cached or streamed; ``fastfwd``, its lean CPU forward), ``cache`` (the
cache format, opening, verifying), ``train`` (sae-lens training), ``metrics`` (held-out quality metrics),
``pipeline`` (the stages, in order); about trained SAEs: ``diagnostics`` (weight-only checks), ``matching``
(one-to-one latent assignment, dense or sparse) and ``seed_stability`` (which latents SAEs of different seeds
share; Paulo & Belrose 2025).
"""
