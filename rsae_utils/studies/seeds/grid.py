"""Seed stability of SAEs on one activation cache (notebook 07; Paulo & Belrose 2025).

SAEs of a *group* differ only in their initialisation seed: the same cache, layer, architecture, width, sparsity,
learning rate and the same order of batches (``SAESpec.data_seed`` fixed). Every pair of seeds is matched with
:func:`rsae_utils.studies.seeds.stability.match_saes` (Hungarian on decoder and on encoder cosines), and a latent is
*shared* when both matched cosines exceed the threshold.

TopK SAEs have L0 = k by construction; a ReLU + L1 SAE's L0 follows from its L1 coefficient, so for the
comparison at matched sparsity the coefficient is calibrated first (:func:`calibrate_l1`: a few short runs on the
same cache, bracketing then regula falsi on log L1 against log L0), and the achieved L0 of the full runs is
reported next to the target.

Everything is stored through the artifact store: SAEs (``paths.seed_sae_dir``), calibrations and matchings
(``paths.seed_calibration_dir``, ``paths.seed_matching_dir``); a rerun trains and matches only what is missing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rsae_utils import paths
from rsae_utils.sae.cache import ActivationCache
from rsae_utils.sae.matching import directions_from_sae
from rsae_utils.sae.spec import ARCHITECTURES, RELU, SAE_LENS, TOPK, SAESpec, sae_name
from rsae_utils.sae.train import load_sae, train_sae
from rsae_utils.store import cached_artifact, read_json, write_json
from rsae_utils.studies.seeds.activity import heldout_live, measure_l0
from rsae_utils.studies.seeds.counts import pair_rows, top_pc
from rsae_utils.studies.seeds.stability import alignment, match_saes, n_seeds_sharing

CODE = (
    "rsae_utils.studies.seeds.grid",
    "rsae_utils.studies.seeds.stability",
    "rsae_utils.sae.matching",
    "rsae_utils.studies.seeds.activity",
    "rsae_utils.studies.seeds.counts",
    "rsae_utils.sae.metrics",
)
DirFn = Callable[[str], Path]  # SAE folder name -> folder


@dataclass(frozen=True)
class Cell:
    """One cell of the grid: the architecture, R, and k (TopK's k, or the L0 a ReLU SAE is calibrated to)."""

    architecture: str
    expansion: int
    k: int

    @property
    def label(self) -> str:
        return f"{self.architecture} R={self.expansion} k={self.k}"


def grid_cells(
    expansions: Sequence[int], ks: Sequence[int], base_expansion: int, base_k: int, relu: str = "base"
) -> list[Cell]:
    """TopK at every R (with ``base_k``) and every k (with ``base_expansion``); ReLU + L1 at the base cell only
    (``relu="base"``), at every TopK cell (``"all"``) or nowhere (``"none"``)."""
    rk = sorted({(int(r), int(base_k)) for r in expansions} | {(int(base_expansion), int(k)) for k in ks})
    cells = [Cell(TOPK, r, k) for r, k in rk]
    if relu == "all":
        cells += [Cell(RELU, r, k) for r, k in rk]
    elif relu == "base":
        cells.append(Cell(RELU, int(base_expansion), int(base_k)))
    elif relu != "none":
        raise ValueError(f"relu must be 'base', 'all' or 'none'; got {relu!r}")
    return cells


def seed_sae_name(layer: int, spec: SAESpec, prefix: str = "") -> str:
    """Folder name of one seed SAE (:func:`rsae_utils.sae.spec.sae_name`, style "seed"): layer, architecture, R,
    k or L1, init seed, data seed, tokens."""
    return sae_name(layer, spec, prefix, style="seed")


# --------------------------------------------------------------------------------------------------------------
# L1 calibration (ReLU SAEs at a target L0)
# --------------------------------------------------------------------------------------------------------------
def _search(f: Callable[[float], float], x: float, ok: float, budget: int, step: Callable[[float], float]) -> float:
    """Root of a decreasing ``f`` within ``ok``, at most ``budget`` evaluations: ``step(f(x))`` until the root is
    bracketed, then regula falsi kept off the bracket's ends. Returns the best x evaluated."""
    fx = f(x)
    best, lo, hi, n = (abs(fx), x), None, None, 1
    while abs(fx) > ok and n < budget:
        if fx > 0:
            lo = (x, fx)
        else:
            hi = (x, fx)
        if lo is None or hi is None:
            x = x + step(fx)
        else:
            t = lo[1] / (lo[1] - hi[1])
            x = lo[0] + min(max(t, 0.1), 0.9) * (hi[0] - lo[0])
        fx, n = f(x), n + 1
        best = min(best, (abs(fx), x))
    return best[1]


def calibrate_l1(
    cache: ActivationCache,
    layer: int,
    spec: SAESpec,
    target_l0: float,
    sae_dir: DirFn,
    out_dir: Path,
    n_tokens: int,
    tol: float = 0.1,
    max_iter: int = 6,
    full_iter: int = 3,
    factor: float = 4.0,
) -> dict[str, Any]:
    """The L1 coefficient at which ``spec`` (a ReLU SAE, its full run) reaches ``target_l0`` within ``tol``; cached.

    Two stages. Short runs (``n_tokens``): start at ``spec.l1_coefficient``, multiply or divide by ``factor``
    until the target is bracketed, then regula falsi on (log L1, log L0) (L0 falls monotonically with L1), at most
    ``max_iter`` runs. A short run stops early, while L0 is still falling, so the full run lands off target: then
    up to ``full_iter`` full-length runs of ``spec`` itself, each correcting log L1 by the miss over the log-log
    slope the short runs measured. The last full run is the first seed's SAE, so it costs nothing extra.
    Returns {"l1", "l0" (of the chosen full run), "target", "runs": [{"l1", "l0", "tokens"}], "converged"}.
    """
    short = replace(spec, n_tokens=int(n_tokens))
    params = {
        "cache": cache.manifest_hash(),
        "layer": int(layer),
        "spec": asdict(spec),
        "short_tokens": int(n_tokens),
        "target": float(target_l0),
        "tol": tol,
        "max_iter": max_iter,
        "full_iter": full_iter,
        "factor": factor,
    }
    runs: list[dict[str, float]] = []

    def f(x: float, full: bool) -> float:  # log(L0 / target): > 0 when the L1 penalty is too weak
        s = replace(spec if full else short, l1_coefficient=float(f"{math.exp(x):.6g}"))
        prefix = "" if s.n_tokens == spec.n_tokens else "calib-"  # a full-length run is the first seed's SAE
        path = train_sae(cache, layer, s, sae_dir(seed_sae_name(layer, s, prefix=prefix)))
        l0 = measure_l0(path, cache, layer, spec.exclude_tokens)
        runs.append({"l1": s.l1_coefficient, "l0": l0, "tokens": s.n_tokens})
        return math.log(max(l0, 1e-3) / target_l0)

    def build(tmp: Path) -> None:
        ok, big = math.log1p(tol), math.log(factor)
        x = math.log(spec.l1_coefficient)
        x = _search(lambda x: f(x, False), x, ok, max_iter, lambda fx: big if fx > 0 else -big)
        pts = np.array([(math.log(r["l1"]), math.log(max(r["l0"], 1e-3))) for r in runs])
        slope = float(np.polyfit(pts[:, 0], pts[:, 1], 1)[0]) if len(np.unique(pts[:, 0])) >= 2 else -1.0
        slope = min(slope, -0.2)  # L0 must fall with L1; a flat fit would send the correction far away
        n_short = len(runs)
        _search(lambda x: f(x, True), x, ok, full_iter, lambda fx: float(np.clip(-fx / slope, -big, big)))
        final = runs[-1] if len(runs) > n_short else runs[n_short - 1]
        write_json(
            tmp / "calibration.json",
            {
                **final,
                "target": float(target_l0),
                "runs": runs,
                "short_tokens": int(n_tokens),
                "slope": slope,
                "converged": abs(final["l0"] / target_l0 - 1) <= tol,
            },
        )

    path = cached_artifact(out_dir, params, build, code=CODE)
    return read_json(path / "calibration.json")


# --------------------------------------------------------------------------------------------------------------
# One group of seeds: train, match every pair, per-latent table of the reference seed
# --------------------------------------------------------------------------------------------------------------
def train_seeds(
    cache: ActivationCache, layer: int, spec: SAESpec, seeds: Sequence[int], data_seed: int, sae_dir: DirFn
) -> list[Path]:
    """One SAE per init seed, all with batch order ``data_seed``; finished ones are reused."""
    out = []
    for s in seeds:
        s_spec = replace(spec, seed=int(s), data_seed=int(data_seed))
        out.append(train_sae(cache, layer, s_spec, sae_dir(seed_sae_name(layer, s_spec))))
    return out


def match_seeds(
    dirs: Sequence[Path],
    cache: ActivationCache,
    layer: int,
    out_dir: Path,
    thresholds: Sequence[float],
    threshold: float = 0.7,
    exclude_tokens: Sequence[int] = (),
    top_n: int = 20,
) -> dict[str, pd.DataFrame]:
    """Match every pair of the SAEs in ``dirs`` (seed order); cached. Returns three tables:

    ``pairs``: (seed_a, seed_b, threshold, shared, same_partner, dec, enc, maxcos_shared) fractions of a's latents,
    plus (shared_live, same_partner_live) over a's live latents and (enc_pc1_removed, shared_pc1_removed)
    after the encoders' top principal components are projected out (:mod:`rsae_utils.studies.seeds.counts`);
    ``latents``: per latent of the first SAE (the reference), its alignment (min of matched decoder and encoder
    cosine) with each other seed, their mean, how many other seeds share it at ``threshold``, firing frequency and
    token entropy on the held-out split; ``seeds``: L0, dead fraction and the encoder's and decoder's top-PC share
    (``enc_pc1_share``, ``dec_pc1_share``) of every SAE on the held-out split.
    """
    if len(dirs) < 2:
        raise ValueError(f"need at least 2 seeds to match; got {len(dirs)}")
    params = {
        "saes": [read_json(Path(d) / "manifest.json")["key"] for d in dirs],
        "cache": cache.manifest_hash(),
        "layer": int(layer),
        "thresholds": [float(t) for t in thresholds],
        "threshold": float(threshold),
        "exclude": list(exclude_tokens),
        "top_n": int(top_n),
    }

    def build(tmp: Path) -> None:
        saes = [load_sae(d) for d in dirs]
        seeds = [int(read_json(Path(d) / "training_record.json")["seed"]) for d in dirs]
        dirs_ = [directions_from_sae(s) for s in saes]
        srows, lat, live = [], None, []
        for s, sae, d, dd in zip(seeds, saes, dirs, dirs_):
            act, stats, fired = heldout_live(sae, cache, layer, exclude_tokens, top_n if lat is None else None)
            lat = stats if lat is None else lat  # the reference (first) seed's per-latent table
            live.append(fired)
            srows.append(
                {
                    "seed": s,
                    **act,
                    "d_sae": int(sae.cfg.d_sae),
                    "tokens_trained": read_json(Path(d) / "training_record.json")["tokens_trained"],
                    "enc_pc1_share": top_pc(dd.enc)[0],
                    "dec_pc1_share": top_pc(dd.dec)[0],
                }
            )
        rows, ref = [], {}
        for i in range(len(saes)):
            for j in range(i + 1, len(saes)):
                res = match_saes(dirs_[i], dirs_[j], threshold=threshold)
                if i == 0:
                    ref[j] = res
                rows += pair_rows(res, seeds[i], seeds[j], live[i], live[j], dirs_[i], dirs_[j], thresholds)
        pd.DataFrame(rows).to_csv(tmp / "pairs.csv", index=False)
        for j, res in ref.items():
            lat[f"align_s{seeds[j]}"] = alignment(res)
        lat["dec_cos_mean"] = np.nanmean([r.dec.cos for r in ref.values()], axis=0)
        lat["enc_cos_mean"] = np.nanmean([r.enc.cos for r in ref.values()], axis=0)
        lat["align_mean"] = np.nanmean([alignment(r) for r in ref.values()], axis=0)
        lat["n_sharing"] = n_seeds_sharing(list(ref.values()))
        lat.to_csv(tmp / "latents.csv", index=False)
        pd.DataFrame(srows).to_csv(tmp / "seeds.csv", index=False)

    path = cached_artifact(out_dir, params, build, code=CODE)
    return {name: pd.read_csv(path / f"{name}.csv") for name in ("pairs", "latents", "seeds")}


# --------------------------------------------------------------------------------------------------------------
# The grid
# --------------------------------------------------------------------------------------------------------------
@dataclass
class SeedGrid:
    """Notebook 07's grid on one layer: every (variant, cell) group of seeds, trained, matched and tabulated.

    ``sae_dir(variant, name)`` says where SAEs go (``paths.seed_sae_dir`` in the notebook), ``analysis_root`` the
    folder of calibrations and matchings (``paths.seed_stability_dir``); ``base`` holds what every SAE shares
    (tokens, batch, lr, excluded tokens). :func:`rsae_utils.studies.seeds.run.seed_grid` wires it for notebook 07.
    """

    caches: dict[str, ActivationCache]
    layer: int
    base: SAESpec
    seeds: Sequence[int]
    data_seed: int
    sae_dir: Callable[[str, str], Path]
    analysis_root: Path
    thresholds: Sequence[float] = tuple(np.round(np.linspace(0, 1, 21), 6))
    threshold: float = 0.7
    calib_tokens: int = 20_480
    calib_tol: float = 0.1
    calib_max_iter: int = 6
    top_n: int = 20
    # Trainer of the TopK cells (ReLU + L1 cells always use sae-lens's, the only one that trains them): "sae-lens"
    # its SAETrainer; "fast" the paper's (sparsify's) rule, FVU + AuxK, as notebook 03's SAEs.
    topk_trainer: str = SAE_LENS
    timings: dict[str, float] | None = None

    def _tick(self, stage: str, t0: float) -> None:
        self.timings = self.timings or {}
        self.timings[stage] = round(self.timings.get(stage, 0.0) + time.perf_counter() - t0, 2)

    def spec(self, variant: str, cell: Cell) -> tuple[SAESpec, dict[str, Any] | None]:
        """The SAE spec of a cell (a ReLU cell's L1 coefficient calibrated first) and its calibration record."""
        arch = ARCHITECTURES[cell.architecture]
        trainer = self.topk_trainer if arch.fixed_l0 else SAE_LENS
        spec = replace(self.base, architecture=cell.architecture, expansion=cell.expansion, k=cell.k, trainer=trainer)
        if arch.fixed_l0:  # L0 = k by construction: nothing to calibrate
            return spec, None
        t0 = time.perf_counter()
        cal = calibrate_l1(
            self.caches[variant],
            self.layer,
            replace(spec, seed=int(self.seeds[0]), data_seed=self.data_seed),
            cell.k,
            lambda name: self.sae_dir(variant, name),
            paths.seed_calibration_dir(self.analysis_root, variant, self.layer, cell.expansion, cell.k),
            n_tokens=min(self.calib_tokens, spec.n_tokens),
            tol=self.calib_tol,
            max_iter=self.calib_max_iter,
        )
        self._tick("calibrate", t0)
        return replace(spec, l1_coefficient=cal["l1"]), cal

    def run_group(self, variant: str, cell: Cell) -> dict[str, pd.DataFrame]:
        """Train (or reuse) the seeds of one group and match them; tables tagged with variant and cell."""
        cache = self.caches[variant]
        spec, cal = self.spec(variant, cell)
        t0 = time.perf_counter()
        dirs = train_seeds(cache, self.layer, spec, self.seeds, self.data_seed, lambda n: self.sae_dir(variant, n))
        self._tick("train", t0)
        t0 = time.perf_counter()
        out = match_seeds(
            dirs,
            cache,
            self.layer,
            paths.seed_matching_dir(self.analysis_root, variant, dirs[0].name),
            self.thresholds,
            self.threshold,
            self.base.exclude_tokens,
            self.top_n,
        )
        self._tick("match", t0)
        tags = {
            "variant": variant,
            "layer": self.layer,
            "architecture": cell.architecture,
            "R": cell.expansion,
            "k": cell.k,
            "l1_coefficient": np.nan if spec.arch.fixed_l0 else spec.l1_coefficient,
        }
        out = {name: df.assign(**tags) for name, df in out.items()}
        if cal is not None:
            out["calibration"] = pd.DataFrame(
                [
                    {
                        **tags,
                        "target_l0": cal["target"],
                        "calib_l0": cal["l0"],
                        "calib_runs": len(cal["runs"]),
                        "calib_tokens": cal["short_tokens"],
                        "converged": cal["converged"],
                    }
                ]
            )
        return out

    def run(self, cells: Sequence[Cell], progress: bool = True) -> dict[str, pd.DataFrame]:
        """Every group of the grid; the tables of all groups concatenated."""
        parts: dict[str, list[pd.DataFrame]] = {}
        for variant in self.caches:
            for cell in cells:
                t0 = time.perf_counter()
                for name, df in self.run_group(variant, cell).items():
                    parts.setdefault(name, []).append(df)
                if progress:
                    print(f"{variant:24s} {cell.label:22s} {time.perf_counter() - t0:6.1f} s", flush=True)
        return {name: pd.concat(dfs, ignore_index=True) for name, dfs in parts.items()}


def summary_table(res: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The tidy table of notebook 07: one row per (variant, layer, architecture, R, k, seed pair, threshold) with
    the shared and same-partner fractions of all of a's latents (``shared_fraction``, ``same_partner_fraction``)
    and of its live latents (``shared_live_fraction``, ``same_partner_live_fraction``), the encoder and shared
    fractions with the encoders' top principal components removed, and per pair the mean held-out L0, dead
    fraction and encoder / decoder top-PC share of the two SAEs (and the ReLU target)."""
    keys = ["variant", "layer", "architecture", "R", "k"]
    per_seed = ["l0", "dead_fraction", "enc_pc1_share", "dec_pc1_share"]  # averaged over the pair's two SAEs
    seeds = res["seeds"][[*keys, "seed", *per_seed]]
    pairs = res["pairs"]
    for side in ("a", "b"):
        names = {"seed": f"seed_{side}", **{c: f"{c}_{side}" for c in per_seed}}
        pairs = pairs.merge(seeds.rename(columns=names), on=[*keys, f"seed_{side}"])
    for c in per_seed:
        pairs[c] = (pairs.pop(f"{c}_a") + pairs.pop(f"{c}_b")) / 2
    pairs["seed_pair"] = pairs.seed_a.astype(str) + "-" + pairs.seed_b.astype(str)
    pairs["target_l0"] = pairs["k"]
    cols = [
        *keys,
        "l1_coefficient",
        "seed_pair",
        "seed_a",
        "seed_b",
        "threshold",
        "shared",
        "same_partner",
        "dec",
        "enc",
        "maxcos_shared",
        "l0",
        "target_l0",
        "dead_fraction",
        # Counted other ways (rsae_utils.studies.seeds.counts): of a's live latents, and without the encoders' top PC.
        "shared_live",
        "same_partner_live",
        "enc_pc1_removed",
        "shared_pc1_removed",
        "enc_pc1_share",
        "dec_pc1_share",
    ]
    renamed = ("shared", "same_partner", "dec", "enc", "maxcos_shared", *cols[-6:-2])
    return pairs[cols].rename(columns={c: f"{c}_fraction" for c in renamed})


def at_threshold(table: pd.DataFrame, threshold: float = 0.7) -> pd.DataFrame:
    """Mean (and min/max over seed pairs) shared fraction per (variant, architecture, R, k) at ``threshold``, with
    the means of the other counts (of live latents, same partner, encoder before and after the top-PC removal)."""
    sel = table[np.isclose(table.threshold, threshold)]
    g = sel.groupby(["variant", "architecture", "R", "k"], sort=False)
    return g.agg(
        shared=("shared_fraction", "mean"),
        shared_min=("shared_fraction", "min"),
        shared_max=("shared_fraction", "max"),
        same_partner=("same_partner_fraction", "mean"),
        shared_live=("shared_live_fraction", "mean"),
        same_partner_live=("same_partner_live_fraction", "mean"),
        enc=("enc_fraction", "mean"),
        enc_pc1_removed=("enc_pc1_removed_fraction", "mean"),
        enc_pc1_share=("enc_pc1_share", "mean"),
        l0=("l0", "mean"),
        dead_fraction=("dead_fraction", "mean"),
        pairs=("seed_pair", "nunique"),
    ).reset_index()
