"""The analyses after notebook 04, one folder each, compute only (figures are drawn in :mod:`rsae_utils.plots`).

Each study reads the stages (``subject`` -> ``sae`` -> ``autointerp``) and never another study, so a new analysis
is a new folder here with its parameter table in ``params/`` and its notebook:

* ``roc``       notebook 05: pooled ROC tables with bootstrap bands, token entropy against layer and AUROC;
* ``why``       notebook 06: why the default's random variants reconstruct worse (factor sweeps, residual statistics);
* ``seeds``     notebook 07: which latents SAEs of different seeds share (Paulo & Belrose 2025);
* ``critique``  notebook 08: the single-token critique measured without an LLM (scorers, positional latents,
  reconstruction diagnostics).
"""
