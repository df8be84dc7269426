"""The prologue notebooks 06, 07 and 08 share: their parameters resolved (a bad one fails here, before any work),
torch's threads set, notebook 03's pipeline opened (its caches and SAEs are what they read), the clock started."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from rsae_utils.params import resolve
from rsae_utils.params.core import Config
from rsae_utils.sae.cache import ActivationCache
from rsae_utils.sae.pipeline import SAEPipeline
from rsae_utils.subject.variants import variant_label


@dataclass
class Session:
    """One notebook's run: its parameters ``cfg``, notebook 03's pipeline ``nb03`` and the start time."""

    cfg: Config
    nb03: SAEPipeline
    t_start: float

    @property
    def m3(self) -> Config:
        """Notebook 03's parameters (the model, its windows, its SAEs)."""
        return self.nb03.cfg

    def elapsed_s(self) -> float:
        return time.time() - self.t_start


def start_session(notebook: str, profile: str, overrides: Mapping[str, Any] | None = None) -> Session:
    """Resolve ``notebook``'s parameters, set torch's threads from them, open notebook 03's pipeline of ``profile``.

    The order is the notebooks' own: notebook 03's pipeline sets torch's threads again when its profile names them.
    """
    t_start = time.time()
    cfg = resolve(notebook, profile, overrides)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return Session(cfg, SAEPipeline(resolve("03_sae_training", profile)), t_start)


def cache_labels(caches: Mapping[str, ActivationCache]) -> dict[str, str]:
    """Each variant's label as its cache recorded it (the step-0 stand-in says which initializer it is)."""
    return {v: variant_label(v, c.manifest.get("variant_record")) for v, c in caches.items()}
