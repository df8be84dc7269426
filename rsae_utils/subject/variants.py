"""The one registry of the five model variants of Heap et al. (2025): names, order, labels, descriptions.

Every table, figure and parameter check takes its variant names, plotting order and display labels from here.
How each variant is *made* lives in :mod:`rsae_utils.subject.rerandomize`; the colours in :mod:`rsae_utils.plots`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rsae_utils.errors import ParameterError

# In plotting order (PAPER.md section 1).
VARIANTS = ("trained", "rerandomized_incl_emb", "rerandomized_excl_emb", "step0", "control")

LABELS = {
    "trained": "Trained",
    "rerandomized_incl_emb": "Re-randomized (incl. emb.)",
    "rerandomized_excl_emb": "Re-randomized (excl. emb.)",
    "step0": "Step-0",
    "control": "Control (noise emb.)",
}

DESCRIPTIONS = {
    "trained": "the released (trained) model",
    "rerandomized_incl_emb": "every parameter tensor redrawn IID Gaussian with its own scalar mean and std",
    "rerandomized_excl_emb": (
        "every parameter tensor except the token embedding and unembedding redrawn IID Gaussian "
        "with its own scalar mean and std"
    ),
    "step0": "the model at initialization",
    "control": "trained model with each token's input embedding replaced by fresh N(0, 1) noise at every forward",
}

# Where a step-0 model came from; a model without a published step0 checkpoint gets the architecture's own
# initializer instead, and every label then says so.
STEP0_CHECKPOINT = "pythia step0 checkpoint"
STEP0_INITIALIZER = "architecture initializer (no step0 checkpoint)"
STEP0_STANDIN_LABEL = "Step-0 (architecture init)"


def validate_variant(variant: Any) -> str:
    if variant not in VARIANTS:
        raise ParameterError(f"parameter 'variant' must be one of {', '.join(map(repr, VARIANTS))}; got {variant!r}")
    return variant


def variant_label(variant: str, record: Mapping[str, Any] | None = None) -> str:
    """Display label; with a variant ``record`` (from ``make_variant``), a step-0 stand-in says it is one.
    Unknown names are returned as they are (tables may hold other series)."""
    if variant == "step0" and record is not None and record.get("step0_source") == STEP0_INITIALIZER:
        return STEP0_STANDIN_LABEL
    return LABELS.get(variant, variant)


def order_variants(variants: Iterable[str]) -> list[str]:
    """The distinct ``variants`` in plotting order: the known ones as in VARIANTS, any others after, sorted."""
    present = set(variants)
    return [v for v in VARIANTS if v in present] + sorted(present - set(VARIANTS))


def labels_from_pairs(variants: Sequence[str], labels: Sequence[Any] | None = None) -> dict[str, str]:
    """{variant: label} from parallel columns (e.g. the SAE index's ``variant`` and ``label``); a missing label
    falls back to :func:`variant_label`, so the step-0 stand-in keeps the label its cache recorded."""
    labels = list(labels) if labels is not None else [None] * len(variants)
    out: dict[str, str] = {}
    for v, lab in zip(variants, labels):
        out.setdefault(str(v), lab if isinstance(lab, str) and lab else variant_label(str(v)))
    return out


def with_variant_labels(df: Any, labels: Mapping[str, str] | None = None) -> Any:
    """``df`` with a ``variant_label`` column right after ``variant``, so a saved table names each variant as its
    figure does."""
    labels = dict(labels or {})
    out = df.copy()
    out.insert(
        list(out.columns).index("variant") + 1,
        "variant_label",
        [labels.get(v) or variant_label(v) for v in out["variant"]],
    )
    return out
