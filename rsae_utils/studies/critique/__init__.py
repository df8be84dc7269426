"""Notebook 08, the single-token critique measured without an LLM: ``run`` (per-SAE scorers and statistics),
``positional`` and ``positional_stats`` (positional latents), ``diagnostics`` (weight-only checks), ``tables``."""
