"""Every notebook's parameters and profiles: the framework (``core``) and one table per notebook (``nbNN_*``).

A notebook resolves its configuration with ``resolve(notebook, profile, overrides)``; the Makefile runner resolves
the same way before it starts a kernel, so an unknown name or a bad value stops the run with a message naming the
parameter and what is allowed, before any heavy work. The tables sit *above* the code they configure: they may
import from ``subject``/``sae``/``autointerp`` (to check a model name, say), never the other way round.
"""

from rsae_utils.errors import ParameterError
from rsae_utils.params import (  # noqa: F401 - registers
    nb01_toy,
    nb02_mmcs,
    nb03_sae,
    nb04_autointerp,
    nb05_roc,
    nb06_why,
    nb07_seeds,
    nb08_critique,
    nb09_budget,
    nb10_claims,
)
from rsae_utils.params.core import (
    NOTEBOOKS,
    PROFILES,
    Config,
    Notebook,
    Param,
    parse_override,
    parse_overrides,
    resolve,
)

__all__ = [
    "NOTEBOOKS",
    "PROFILES",
    "Config",
    "Notebook",
    "Param",
    "ParameterError",
    "parse_override",
    "parse_overrides",
    "resolve",
]
