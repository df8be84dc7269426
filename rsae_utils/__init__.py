"""Utilities behind the notebooks of the random-transformer SAE companion (Heap et al. 2025 and around it)."""

from rsae_utils.profiles import ParameterError, resolve

__all__ = ["ParameterError", "resolve"]
__version__ = "0.1.0"
