"""Notebook 07 (Paulo & Belrose 2025): ``matching`` (one-to-one latent assignment), ``stability`` (shared
latents between seeds), ``activity`` (held-out firing of each latent), ``grid`` (the SAE grid over seeds),
``replicates`` (auto-interp over SAE seeds), ``toy`` (the same on synthetic data with known features)."""
