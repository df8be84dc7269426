"""Notebook 06: ``sweep`` (SAEs over scale factors and a second architecture), ``residual_stats`` (what the
residual stream holds), ``answer`` (the gap tables and the answer's sentences)."""
