"""Notebook 06's controlled answer in words, computed from its tables (issue 22): what the architecture and the
initializer each change at initialization, how well the weights alone predict the residual, how much an SAE beats
its Gaussian, and how many latents are token detectors. No number here is typed by hand."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

import numpy as np
import pandas as pd

from rsae_utils.studies.why.seed_intervals import Draws, fmt, interval, show
from rsae_utils.subject.init_cells import CELLS, LABELS
from rsae_utils.subject.variants import variant_label

GRID = ("llama-normal", "llama-pythia", "neox-normal", "neox-pythia")


def _name(source: str, labels: Mapping[str, str] | None = None) -> str:
    if source in LABELS:
        return LABELS[source]
    v, _, tag = source.partition("+")
    base = (labels or {}).get(v, variant_label(v))
    return f"{base} ({tag})" if tag else base


def _at(df: pd.DataFrame, source: str, frac: float, col: str) -> float:
    """``col`` of ``source`` at the row whose depth fraction is nearest ``frac``."""
    d = df[df.source == source]
    if not len(d) or col not in d:
        return float("nan")
    return float(d.iloc[(d.depth_fraction - frac).abs().argsort().iloc[0]][col])


def effects(df: pd.DataFrame, frac: float, col: str) -> dict[str, float]:
    """The 2x2's main effects on ``col`` at depth ``frac``: NeoX minus Llama (mean over the two initializers),
    Pythia's init minus the normal one (mean over the two architectures), and the four cells' values."""
    v = {c: _at(df, c, frac, col) for c in GRID}
    return {
        **v,
        "architecture": (v["neox-normal"] + v["neox-pythia"] - v["llama-normal"] - v["llama-pythia"]) / 2,
        "initializer": (v["llama-pythia"] + v["neox-pythia"] - v["llama-normal"] - v["neox-normal"]) / 2,
    }


def cell_sentences(stats: pd.DataFrame, saes: pd.DataFrame, fracs: Sequence[float], draws: Draws = None) -> list[str]:
    """The 2x2 at each depth fraction in ``fracs``: token-identity share, rms growth over the first layer, the SAEs'
    explained variance (``saes``: seed means; ``draws``: its seed draws, for intervals); the main effect of each
    factor; depth (6 against 30 layers) for the Pythia-init NeoX."""
    if not set(GRID) <= set(stats.source):
        return []
    st = stats.copy()
    first = st.sort_values("depth_fraction").groupby("source").norm_rms.first()
    st["growth"] = st.norm_rms / st.source.map(first)
    out = []
    for f in fracs:
        tok, grow = effects(st, f, "token_share_adj"), effects(st, f, "growth")
        cells = ", ".join(f"{LABELS[c]} {tok[c]:.2f}" for c in GRID)
        s = (
            f"At initialization, {f:.0%} of the way through the depth, token identity explains (adjusted share) "
            f"{cells}: the architecture (GPT-NeoX minus Llama) moves it by {tok['architecture']:+.2f}, the "
            f"initializer (Pythia's minus the normal one) by {tok['initializer']:+.2f}. The residual's rms grows "
            f"x{grow['llama-normal']:.1f} / x{grow['llama-pythia']:.1f} / x{grow['neox-normal']:.1f} / "
            f"x{grow['neox-pythia']:.1f} from the first layer, in the same order."
        )
        if len(saes):
            ev = effects(saes, f, "explained_variance")
            if np.isfinite([ev[c] for c in GRID]).all():

                def at(key: str, spec: str, f: float = f, ev: dict = ev) -> str:
                    return fmt(ev[key], draws, lambda d: effects(d, f, "explained_variance")[key], spec)

                s += (
                    f" The SAEs' explained variance: {' / '.join(at(c, '.2f') for c in GRID)} (architecture "
                    f"{at('architecture', '+.2f')}, initializer {at('initializer', '+.2f')})."
                )
        out.append(s)
    if fracs:
        tok = [effects(st, f, "token_share_adj") for f in fracs]
        arch = float(np.mean([abs(t["architecture"]) for t in tok]))
        init = float(np.mean([abs(t["initializer"]) for t in tok]))
        bigger, smaller = ("architecture", "initializer") if arch >= init else ("initializer", "architecture")
        out.append(
            f"So, the rest held fixed, the {bigger} decides most of how much token identity survives at "
            f"initialization (mean effect {max(arch, init):.2f} of the variance against {min(arch, init):.2f} for "
            f"the {smaller})."
        )
    if "neox-pythia-6" in set(stats.source):
        f = float(max(fracs)) if len(fracs) else 0.3
        a, b = _at(stats, "neox-pythia-6", f, "token_share_adj"), _at(stats, "neox-pythia", f, "token_share_adj")
        n6 = CELLS["neox-pythia-6"]["n_layers"]
        out.append(
            f"Depth, architecture and initializer fixed (GPT-NeoX, Pythia's init): {n6} layers keep {a:.2f} of the "
            f"variance as token identity at {f:.0%} of the depth, the full depth {b:.2f}."
        )
    return out


def prediction_sentences(pred: pd.DataFrame, labels: Mapping[str, str] | None = None) -> list[str]:
    """How well the mean field's rms and token share match the measured ones, per cache."""
    d = pred.dropna(subset=["norm_rms", "token_share_adj"])
    if not len(d):
        return []
    parts = []
    for s, g in d.groupby("source", sort=False):
        ratio = np.exp(np.median(np.abs(np.log(g.pred_rms / g.norm_rms))))
        tok = float((g.pred_token_share - g.token_share_adj).mean())
        parts.append(f"{_name(s, labels)}: rms within x{ratio:.2f}, token share {tok:+.2f}")
    rule = d[d.source == "rerandomized_incl_emb"]
    rule_s = ""
    if len(rule):
        r = rule.sort_values("layer").iloc[min(1, len(rule) - 1)]
        rule_s = (
            f" Under the paper's rule each of SmolLM2's blocks writes ~{r.attn_write:.0f}x (attention) and "
            f"~{r.mlp_write:.0f}x (MLP) the embedding's variance, so after block {int(r.layer)} the embedding "
            f"itself is {r.pred_emb_share:.1%} of the residual's variance (predicted)."
        )
    return [
        "From per-tensor means and stds alone, the mean field predicts (median factor between predicted and measured "
        "rms; mean predicted-minus-measured token share over the layers): " + "; ".join(parts) + "." + rule_s
    ]


GAUSS_MARGIN = 0.02  # an SAE that beats its Gaussian by less than this found no sparse structure worth the name


def _value(d: pd.DataFrame, source: str, layer: int, col: str) -> float:
    v = d.loc[(d.source == source) & (d.layer == layer), col]
    return float(v.iloc[0]) if len(v) else float("nan")


def gaussian_sentences(gauss: pd.DataFrame, labels: Mapping[str, str] | None = None, draws: Draws = None) -> list[str]:
    """Each SAE's explained variance minus that of the same SAE on the residual's Gaussian (``gauss``: seed means;
    ``draws``: its seed draws). With intervals, an SAE is "no better" than its Gaussian when the whole interval is
    below ``GAUSS_MARGIN``, "better" when all of it is above, else undecided; without, by its value."""
    if not len(gauss):
        return []
    parts, verdict = [], {"no better": set(), "undecided": set()}
    for s, g in gauss.groupby("source", sort=False):
        vals = []
        for r in g.sort_values("layer").itertuples():
            lo, hi = interval(draws, partial(_value, source=s, layer=r.layer, col="ev_minus_gauss"))
            vals.append(f"L{int(r.layer)} {show(r.ev_minus_gauss, lo, hi, '+.2f')}")
            lo, hi = (lo, hi) if np.isfinite(lo) else (r.ev_minus_gauss, r.ev_minus_gauss)
            if hi < GAUSS_MARGIN:
                verdict["no better"].add(_name(s, labels))
            elif lo < GAUSS_MARGIN:
                verdict["undecided"].add(_name(s, labels))
        parts.append(f"{_name(s, labels)} {', '.join(vals)}")
    tail = (
        f" No better than its Gaussian (below +{GAUSS_MARGIN:.2f}{', the whole interval' if draws else ''}) at one "
        f"layer or more: {', '.join(sorted(verdict['no better'])) or 'none'}."
    )
    if verdict["undecided"]:
        tail += f" Within reach of +{GAUSS_MARGIN:.2f} at some layer: {', '.join(sorted(verdict['undecided']))}."
    return [
        "Explained variance of the SAE minus that of the same SAE trained on a Gaussian with the residual's mean and "
        "covariance (what sparse structure adds): " + "; ".join(parts) + "." + tail
    ]


def detector_sentences(
    table: pd.DataFrame, base_r: int, labels: Mapping[str, str] | None = None, draws: Draws = None
) -> list[str]:
    """Token-detector latents (and their shuffled-token control) of the sweep's base-width SAEs (``table``: seed
    means; ``draws``: its seed draws, for intervals on the share and the median best cosine)."""
    if "detector_share" not in table:
        return []
    d = table[(table.factor == "width") & (table["R"] == base_r)].drop_duplicates(["source", "layer"])
    draws = [x[(x.factor == "width") & (x["R"] == base_r)] for x in draws or []]
    parts = []
    for s, g in d.groupby("source", sort=False):
        vals = []
        for r in g.sort_values("layer").itertuples():

            def pct(x: pd.DataFrame, s: str = s, layer: int = r.layer) -> float:
                return 100 * _value(x, s, layer, "detector_share")

            share = fmt(100 * r.detector_share, draws, pct, ".1f", clip=(0.0, 100.0))
            cos_at = partial(_value, source=s, layer=r.layer, col="detector_cos_median")
            cos = fmt(r.detector_cos_median, draws, cos_at, ".2f")
            vals.append(
                f"L{int(r.layer)} {share}% ({r.detector_control:.1%}), median best cosine {cos} "
                f"({r.detector_cos_median_control:.2f})"
            )
        parts.append(f"{_name(s, labels)} {', '.join(vals)}")
    thr = float(d.detector_threshold.iloc[0]) if len(d) else float("nan")
    return [
        f"Token-detector latents (decoder cosine > {thr:g} with a token's mean direction; in brackets with the tokens "
        "shuffled) and the median latent's best cosine with any token's direction: " + "; ".join(parts) + "."
    ]
