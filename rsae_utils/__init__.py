"""Utilities behind the notebooks of the random-transformer SAE companion (Heap et al. 2025 and around it).

The package follows the paper's flow; each stage reads only what an earlier one wrote (``paths`` names every
artifact):

    subject/     text -> model -> variant: corpus, windows, models, gguf, hub, variants (registry), rerandomize
    sae/         variant -> cache -> SAE -> metrics: harvest, cache, train, metrics, pipeline (notebook 03's stages)
    autointerp/  SAE + cache -> examples -> explanations and scores -> tables (llm/: the LLM backends)
    plots/       tables -> figures: the one style; every figure is drawn here
    toys/        the toy experiments beside it: synthetic data, the superposition demo, the MMCS sweep

and underneath: ``params`` (every notebook's parameters and profiles), ``errors``, ``paths``, ``store`` (the
artifact store), ``repro`` (seeds, hashes, provenance), ``nbrun`` (the papermill runner behind ``make figures``).
"""

from rsae_utils.errors import ParameterError

__all__ = ["ParameterError"]
__version__ = "0.1.0"
