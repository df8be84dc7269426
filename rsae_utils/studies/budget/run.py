"""The training-budget study's run: its caches, one snapshot run per (variant, layer, seed), the measures of every
snapshot, and the tables.

The study builds its own caches (notebook 03's pipeline on the study's corpus and windows, under
``caches/budget``), so its SAEs train on more unique tokens than notebook 03's without touching them. Each
(variant, layer, seed) trains once to its largest budget and is saved at every budget on the way
(:mod:`rsae_utils.sae.snapshots`); seed 1 stops at ``seed_budget_max`` (enough for the seed-shared fraction at
three budgets). The repetition pair: at ``repeat_budget``, the same spec trained on a quarter of the windows (4x
the epochs), measured on held-out *and* on its own training tokens beside the main run.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from rsae_utils import paths
from rsae_utils.params import resolve
from rsae_utils.sae.cache import ActivationCache, token_mask
from rsae_utils.sae.codes import encode_codes
from rsae_utils.sae.directions import split_directions
from rsae_utils.sae.pipeline import SAEPipeline, resolved_dtype
from rsae_utils.sae.snapshots import geometric_budgets, train_snapshots
from rsae_utils.sae.spec import FAST, SAESpec
from rsae_utils.sae.train import load_record, load_sae
from rsae_utils.store import cached_artifact, load_manifest, read_json, write_json
from rsae_utils.studies.budget import measures as measures_module
from rsae_utils.studies.budget.measures import (
    SAMPLING_KEYS,
    latent_measures,
    reconstruction_measures,
    seed_shared,
)

# The notebook-03 parameters the study sets from its own (the rest keep notebook 03's value in the profile).
NB03_KEYS = (
    "model",
    "variants",
    "layers",
    "corpus",
    "max_corpus_chars",
    "ctx",
    "n_train_windows",
    "n_test_windows",
    "harvest_dtype",
    "cache_dtype",
    "matmul_dtype",
    "expansion",
    "k",
    "batch_size",
    "lr",
)
MEASURE_KEYS = (*SAMPLING_KEYS, "mark_frac", "top_k_tokens", "single_token_threshold", "n_top_pcs", "shared_threshold")
MAIN, REPEAT = "main", "repeat"
MEASURES = (
    "explained_variance",
    "ev_top_pcs_out",
    "median_token_fvu",
    "cos_sim",
    "dead_fraction",
    "token_entropy",
    "single_token_share",
    "detection_auroc",
    "fuzzing_auroc",
    "seed_shared",
)


class BudgetPipeline(SAEPipeline):
    """Notebook 03's pipeline writing its caches where the study keeps them (its corpus and windows differ)."""

    def cache_dir(self, variant: str) -> Path:
        c = self.cfg
        return paths.budget_cache_dir(self.profile, c.model, c.revision, variant, c.variant_seed)


@dataclass(frozen=True)
class Run:
    """One snapshot run: variant, layer, seed, its budgets, and ``run`` (main or the repetition run)."""

    variant: str
    layer: int
    seed: int
    budgets: tuple[int, ...]
    run: str = MAIN


def snapshot_name(layer: int, spec: SAESpec, run: str) -> str:
    """Folder name of one snapshot: layer, width, k, seeds, tokens and, for the repetition run, its windows."""
    rep = f"-w{spec.train_windows}" if spec.train_windows else ""
    return f"L{layer:02d}-R{spec.expansion}-k{spec.k}-s{spec.seed}-t{spec.n_tokens}{rep}-{run}"


class BudgetStudy:
    """The study for one resolved ``09_training_budget`` Config (see the module docstring)."""

    def __init__(self, cfg: Any):
        self.cfg = cfg
        overrides = {k: cfg[k] for k in NB03_KEYS}
        # notebook 03 takes a resolved harvest dtype (it enters the cache key); the study harvests on the CPU
        overrides["harvest_dtype"] = resolved_dtype(overrides["harvest_dtype"], "cpu")
        overrides.update(trainer=FAST, train_tokens=int(cfg.budget_stop), sae_seed=0)
        self.nb03_cfg = resolve("03_sae_training", cfg.profile, overrides)
        self.pipe = BudgetPipeline(self.nb03_cfg)
        self.budgets = geometric_budgets(int(cfg.budget_start), int(cfg.budget_stop), int(cfg.budget_factor))
        self.timings: dict[str, float] = {}

    def _tick(self, stage: str, t0: float) -> None:
        self.timings[stage] = round(self.timings.get(stage, 0.0) + time.perf_counter() - t0, 1)

    @property
    def measures(self) -> list[str]:
        """The measure columns of the table, in the figure's order."""
        return list(MEASURES)

    def figure_note(self, nb03_tokens: int) -> str:
        c = self.cfg
        unique = int(c.n_train_windows) * int(c.ctx)
        return (
            f"{c.model}, corpus {c.corpus}: {unique:,} unique training tokens per variant, {c.n_test_windows} held-out "
            f"windows of {c.ctx}; TopK R={c.expansion} k={c.k}, batch {c.batch_size}, lr {c.lr:g} constant; "
            f"budgets {self.budgets[0]:,}-{self.budgets[-1]:,} tokens (x{c.budget_factor}); notebook 03 trains on "
            f"{nb03_tokens:,}. Token-identity scorer (offline), not an LLM. The paper: Pythia, RedPajama, 100M tokens."
        )

    # --- what runs ---
    def runs(self) -> list[Run]:
        c = self.cfg
        out = []
        seed_budgets = tuple(b for b in self.budgets if b <= int(c.seed_budget_max))
        for v in c.variants:
            # a short variant stops short_by budgets early (never below the first)
            main = (
                self.budgets[: max(1, len(self.budgets) - int(c.short_by))] if v in c.short_variants else self.budgets
            )
            for layer in c.layers:
                out.append(Run(v, int(layer), 0, tuple(main)))
                for s in c.seeds[1:] if v in c.seed_variants else ():
                    out.append(Run(v, int(layer), int(s), seed_budgets))
                if int(layer) in c.repeat_layers and v in c.repeat_variants:
                    out.append(Run(v, int(layer), 0, (int(c.repeat_budget),), REPEAT))
        return out

    def spec(self, run: Run) -> SAESpec:
        base = replace(self.pipe.spec, seed=run.seed, data_seed=0)  # seeds differ in init only, as notebook 07's
        if run.run == REPEAT:
            base = replace(base, train_windows=self.repeat_windows)
        return base

    @property
    def repeat_windows(self) -> int:
        return max(1, int(self.cfg.n_train_windows) // int(self.cfg.repeat_factor))

    def sae_dir(self, run: Run, spec: SAESpec) -> Path:
        c = self.cfg
        return paths.budget_sae_dir(c.profile, c.model, None, run.variant, snapshot_name(run.layer, spec, run.run))

    # --- stages ---
    def build_caches(self, progress: bool = True) -> dict[str, ActivationCache]:
        t0 = time.perf_counter()
        out = {v: self.pipe.build_cache(v, progress=progress) for v in self.cfg.variants}
        self.pipe.release_model()
        self._tick("harvest", t0)
        return out

    def train(self, progress: bool = True) -> dict[tuple[Run, int], Path]:
        """{(run, budget): SAE folder}, training what is missing (one run per Run, snapshots on the way)."""
        t0 = time.perf_counter()
        runs = self.runs()
        total = sum(max(r.budgets) for r in runs)
        out: dict[tuple[Run, int], Path] = {}
        with tqdm(total=total, desc="budget study: training tokens", unit="tok", disable=not progress) as bar:
            for r in runs:
                spec = self.spec(r)
                got = train_snapshots(
                    self.pipe.cache(r.variant),
                    r.layer,
                    spec,
                    r.budgets,
                    lambda s, r=r: self.sae_dir(r, s),
                    bar.update,
                    checkpoint_s=self.cfg.checkpoint_s,
                )
                out.update({(r, b): p for b, p in got.items()})
        self._tick("train", t0)
        return out

    def _held_out(self, variant: str, layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(held-out windows (n, ctx, d), their tokens, the positions SAE metrics use: boundary tokens left out)."""
        cache = self.pipe.cache(variant)
        acts, tokens = cache.acts(layer, "test"), cache.tokens("test")
        return acts, tokens, self._keep(tokens)

    def _keep(self, tokens: torch.Tensor) -> torch.Tensor:
        """The positions SAE training and metrics use (boundary tokens left out)."""
        return token_mask(tokens, self.pipe.exclude_tokens)

    def _train_rows(self, variant: str, layer: int, n_windows: int) -> torch.Tensor:
        """Rows of the first ``n_windows`` training windows: the repetition run's whole training set."""
        cache = self.pipe.cache(variant)
        acts, tokens = cache.acts(layer, "train", n_windows=n_windows), cache.tokens("train")[:n_windows]
        return acts[self._keep(tokens)]

    def measure(self, saes: Mapping[tuple[Run, int], Path], progress: bool = True) -> pd.DataFrame:
        """One row per snapshot: its run, tokens, epochs and every measure (each SAE's measures an artifact)."""
        t0 = time.perf_counter()
        c = self.cfg
        p = {k: c[k] for k in MEASURE_KEYS} | {"seed": int(c.sampling_seed)}
        rows = []
        by_cell: dict[tuple[str, int], list[tuple[Run, int, Path]]] = {}
        for (r, b), path in saes.items():
            by_cell.setdefault((r.variant, r.layer), []).append((r, b, path))
        cells = tqdm(sorted(by_cell.items()), desc="budget study: measures", disable=not progress)
        for (variant, layer), items in cells:
            held = self._held_out(variant, layer)
            # read from the training split only when a measure is built, not on a rerun that reuses them all
            cache, n_pcs = self.pipe.cache(variant), int(c.n_top_pcs)
            dirs = functools.cache(functools.partial(split_directions, cache, layer, self._keep, n_pcs))
            rep = None
            if layer in c.repeat_layers:
                rep = functools.cache(functools.partial(self._train_rows, variant, layer, self.repeat_windows))
            for r, b, path in sorted(items, key=lambda t: (t[0].seed, t[0].run, t[1])):
                # FVU on the repetition run's windows only where the pair is compared (the repeat budget)
                rep_rows = rep if b == int(c.repeat_budget) and r.seed == 0 else None
                rows.append(self._measure_one(r, b, path, p, held, rep_rows, dirs))
        table = pd.DataFrame(rows)
        self._tick("measure", t0)
        return self._with_seed_shared(table, saes)

    def _measure_one(self, r, b, path, p, held, rep_rows, dirs) -> dict[str, Any]:
        """One snapshot's row; ``dirs()`` and ``rep_rows()`` (or None) give the cell's top directions and repetition
        rows, read only if this snapshot's measures are built."""
        acts, tokens, mask = held
        sae_key = load_manifest(path)["key"]
        params = {"sae": sae_key, "measures": p, "test_key": self.pipe.cache(r.variant).manifest["key"]}
        params["repeat_fvu"] = rep_rows is not None
        params["latents"] = r.seed == 0

        def build(tmp: Path) -> dict:
            sae = load_sae(path)
            codes = encode_codes(sae, acts)  # one encoding of the held-out windows for every measure
            m = reconstruction_measures(sae, acts, dirs(), mask=mask, codes=codes)
            if r.seed == 0:  # the other seeds are there for the seed-shared share and the seed spread of EV
                m |= latent_measures(sae, acts, tokens, p, codes=codes)
            if rep_rows is not None:
                m["train_fvu_repeat_windows"] = (
                    1.0 - reconstruction_measures(sae, rep_rows(), dirs()[:0])["explained_variance"]
                )
            write_json(tmp / "measures.json", m)
            return {}

        out = cached_artifact(paths.budget_measures_dir(path), params, build, code=(measures_module,))
        rec = load_record(path)
        return {
            "variant": r.variant,
            "layer": r.layer,
            "seed": r.seed,
            "run": r.run,
            "tokens": b,
            "unique_tokens": int(rec["train_tokens_available"]),
            "epochs": float(rec["epochs"]),
            "steps": int(rec["steps"]),
            "train_fvu_repeat_windows": float("nan"),
            **read_json(out / "measures.json"),
        }

    def _with_seed_shared(self, table: pd.DataFrame, saes: Mapping[tuple[Run, int], Path]) -> pd.DataFrame:
        """Seed 0's rows get ``seed_shared`` against seed 1 at every budget both have."""
        if table.empty or len(self.cfg.seeds) < 2:
            return table.assign(seed_shared=float("nan"))
        paths_by = {(r.variant, r.layer, r.seed, r.run, b): p for (r, b), p in saes.items()}
        other = int(self.cfg.seeds[1])
        shared = []
        for row in table.itertuples():
            q = paths_by.get((row.variant, row.layer, other, row.run, row.tokens))
            if row.seed != 0 or q is None:
                shared.append(float("nan"))
                continue
            a = load_sae(paths_by[(row.variant, row.layer, 0, row.run, row.tokens)])
            shared.append(seed_shared(a, load_sae(q), float(self.cfg.shared_threshold)))
        return table.assign(seed_shared=shared)
