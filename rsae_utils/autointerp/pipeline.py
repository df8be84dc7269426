"""The auto-interp run: SAEs -> latent examples -> explanations -> detection/fuzzing scores -> tidy tables.

Layout under ``out_dir`` (``paths.autointerp_dir(profile)`` in the notebooks)::

    records/<model>__<variant>__L<layer>/records.json   sampled latents and their windows (artifact + manifest)
    units/<records key>/<scoring key>/<backend>/<latent>.<scorer>.json   one finished scoring unit
    units/<records key>/<scoring key>/<backend>/<latent>.explanation.json
    tables/examples.csv  latents.csv  latent_stats.csv  unparsable.csv   (+ .manifest.json each)

Resuming: a unit (variant, layer, latent, scorer, backend) is written atomically when it finishes and reused
whenever its keys match (records key = SAE + cache content hashes + sampling parameters + sampling code, see
:mod:`~rsae_utils.autointerp.records`; scoring key =
scoring parameters + prompt/scorer code), so an interrupted run loses at most the unit in flight (and the HTTP
backend's own response cache keeps even that unit's finished requests). The tables are rebuilt from the units at
the end of every run. An LLM unit none of whose answers parsed is not stored (a rerun asks again), and a backend
whose share of unparsable answers exceeds ``max_unparsable_share`` fails the run (:class:`AnswersUnparsable`),
after the tables are written for inspection.

Probabilities: the LLM rows hold P(1) / (P(0) + P(1)); the token-baseline rows hold its score in [0, 1]
(see ``baseline``). AUROC uses only their order; balanced accuracy thresholds both at 0.5.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from rsae_utils.autointerp import baseline as bl
from rsae_utils.autointerp.examples import LatentRecord
from rsae_utils.autointerp.llm.base import LLMBackend
from rsae_utils.autointerp.prompts import Decode, TokenDecoder
from rsae_utils.autointerp.records import load_or_build_records
from rsae_utils.autointerp.scorers import ROW_COLUMNS, SCORERS, explain, score_with_backend
from rsae_utils.autointerp.tables import latent_stats_row, per_latent_table, unparsable_table
from rsae_utils.errors import AnswersUnparsable, ParameterError
from rsae_utils.paths import (
    autointerp_records_root,
    autointerp_tables_dir,
    autointerp_units_dir,
    table_file,
    table_manifest,
    unit_file,
)
from rsae_utils.repro import code_hash, stable_hash
from rsae_utils.sae.cache import open_cache as open_cache_folder
from rsae_utils.sae.train import load_sae as load_sae_folder
from rsae_utils.store import load_table, read_json, save_table, write_json
from rsae_utils.subject.models import load_tokenizer

RUN_COLUMNS = ("model", "variant", "layer", "sae_dir", "cache_dir")
SCORING_CODE = (
    "rsae_utils.autointerp.prompts",
    "rsae_utils.autointerp.scorers",
    "rsae_utils.autointerp.baseline",
    "rsae_utils.tokenstats",
)

# The 04_autointerp parameters each part of the run reads (their values live in rsae_utils.params.nb04_autointerp).
SAMPLING_KEYS = (
    "n_latents",
    "min_examples",
    "n_explain",
    "explain_pool",
    "n_bins",
    "per_bin",
    "n_negatives",
    "window_len",
    "split",
    "max_contexts",
    "seed",
    "device",
)
SCORING_KEYS = (
    "scorers",
    "batch_size",
    "mark_frac",
    "top_k_tokens",
    "explainer_max_tokens",
    "single_token_threshold",
    "seed",
)
LLM_KEYS = ("llm_n_latents", "llm_variants", "llm_layers")


def pick_params(cfg: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    missing = [k for k in keys if k not in cfg]
    if missing:
        raise ParameterError(
            f"the auto-interp config lacks parameter(s) {missing}; pass a resolved 04_autointerp Config "
            "(rsae_utils.params.resolve('04_autointerp', profile, overrides))"
        )
    return {k: cfg[k] for k in keys}


# --------------------------------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------------------------------
def _unit(path: Path, compute: Callable[[], dict], keep: Callable[[dict], bool] = lambda r: True) -> dict:
    """Read a finished unit, or compute it and write it atomically (only when ``keep(result)``)."""
    if path.exists():
        try:
            return read_json(path)
        except (OSError, ValueError):
            pass  # a damaged unit is recomputed
    result = compute()
    if keep(result):
        write_json(path, result, compact=True)
    return result


def examples_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The scored rows as one table in one column order: model, variant, layer, then ``scorers.ROW_COLUMNS``,
    then any other column alphabetically. Without it the order would be that of the first row's keys, which a
    replayed unit stores sorted: the same content in other bytes on a resumed run."""
    df = pd.DataFrame(list(rows))
    first = [c for c in (*RUN_COLUMNS[:3], *ROW_COLUMNS) if c in df.columns]
    return df[first + sorted(c for c in df.columns if c not in first)]


def _answered(unit: dict) -> bool:
    """False for a scoring unit none of whose answers could be parsed: it is not stored as a result, so a rerun
    (after the backend is fixed) asks again instead of replaying the failure."""
    rows = unit.get("rows") or []
    return not rows or not all(bool(r.get("unparsable")) for r in rows)


def check_unparsable(examples: pd.DataFrame, backends: Sequence[LLMBackend], max_share: float) -> None:
    """AnswersUnparsable when a backend's share of unparsable answers exceeds ``max_share``."""
    if examples.empty or "backend" not in examples:
        return
    for backend in backends:
        mine = examples[examples["backend"] == backend.name]
        if mine.empty:
            continue
        share = float(mine["unparsable"].astype(bool).mean())
        if share > max_share:
            raise AnswersUnparsable(
                f"backend {backend.name}: {share:.0%} of its {len(mine)} answers could not be parsed, more than "
                f"max_unparsable_share={max_share:g}; see tables/unparsable.csv. Check that the server returns "
                "token logprobs and that the model answers with a list of 0/1 (a larger or instruction-tuned "
                "model, or structured decoding)"
            )


@dataclass
class AutointerpResult:
    examples: pd.DataFrame
    latents: pd.DataFrame
    latent_stats: pd.DataFrame
    unparsable: pd.DataFrame
    records: dict[tuple[str, str, int], list[LatentRecord]] = field(default_factory=dict)
    explanations: dict[tuple[str, str, int, int, str], str] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    runtime_s: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)  # sampling, scoring, llm, backends


def validate_runs(runs: pd.DataFrame) -> None:
    missing = [c for c in RUN_COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"runs table lacks column(s) {missing}; needs {list(RUN_COLUMNS)}")
    if runs.empty:
        raise ValueError("runs table is empty: no SAEs to interpret (run notebook 03 first)")


def run_params(cfg: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The parameters each part of a run reads: ``{"sampling", "scoring", "llm", "limits"}``, the scorers checked."""
    params = {
        "sampling": pick_params(cfg, SAMPLING_KEYS),
        "scoring": pick_params(cfg, SCORING_KEYS),
        "llm": pick_params(cfg, LLM_KEYS),
        "limits": pick_params(cfg, ("max_unparsable_share",)),
    }
    for s in params["scoring"]["scorers"]:
        if s not in SCORERS:
            raise ValueError(f"unknown scorer {s!r}; allowed: {', '.join(SCORERS)}")
    return params


def llm_scores(llm: Mapping[str, Any], variant: str, layer: int) -> bool:
    """Whether the LLM backends score the SAE of (``variant``, ``layer``): ``llm_variants`` and ``llm_layers``."""
    return variant in llm["llm_variants"] and (llm["llm_layers"] is None or layer in llm["llm_layers"])


def check_backends(runs: pd.DataFrame, llm: Mapping[str, Any], backends: Sequence[LLMBackend]) -> None:
    """Fail before any SAE is encoded: when the LLM would score no SAE of ``runs``, or a backend is unreachable."""
    if not backends:
        return
    if not any(llm_scores(llm, str(v), int(x)) for v, x in zip(runs["variant"], runs["layer"], strict=True)):
        raise ValueError(
            f"no SAE matches llm_variants={llm['llm_variants']} and llm_layers={llm['llm_layers']}: the LLM "
            f"would score nothing; SAEs exist for variants {sorted(runs['variant'].unique())} and layers "
            f"{sorted(runs['layer'].unique())}"
        )
    for backend in backends:  # an endpoint that is down fails here, before any SAE is encoded ...
        # ... unless its response cache can answer (preflight warns then; an uncached request still fails).
        check = getattr(backend, "preflight", None) or getattr(backend, "check", None)
        if callable(check):
            check()


@dataclass
class AutointerpRun:
    """One run's fixed inputs (parameters, backends, loaders, unit keys) and what it collects, SAE by SAE."""

    out_dir: Path
    params: dict[str, dict[str, Any]]  # from run_params
    backends: Sequence[LLMBackend]
    loaders: tuple[Callable, Callable]  # (load_sae, open_cache)
    strict: bool  # verify notebook 03's folders (in-memory test loaders name no folder)
    decode_of: Callable[[str], Decode]
    progress: bool = True
    ex_rows: list[dict] = field(default_factory=list)
    stat_rows: list[dict] = field(default_factory=list)
    explanations: dict[tuple[str, str, int, int, str], str] = field(default_factory=dict)
    records: dict[tuple[str, str, int], list[LatentRecord]] = field(default_factory=dict)
    scoring_key: str = field(init=False)

    def __post_init__(self) -> None:
        # Units go stale when the scoring parameters or the code that builds prompts and scores change.
        self.scoring_key = stable_hash({"scoring": self.params["scoring"], "code": code_hash(SCORING_CODE)})

    def score_sae(self, run: Mapping[str, Any]) -> None:
        """One SAE: its sampled latents (records), their token statistics, the token baseline on every one and
        each LLM backend on a seeded sample (when the SAE's variant and layer are the LLM's)."""
        model, variant, layer = str(run["model"]), str(run["variant"]), int(run["layer"])
        meta = {"model": model, "variant": variant, "layer": layer}
        load_sae, open_cache = self.loaders
        sampling = self.params["sampling"]
        recs, summary, rec_key = load_or_build_records(run, sampling, self.out_dir, load_sae, open_cache, self.strict)
        self.records[(model, variant, layer)] = recs
        decode = self.decode_of(model)
        self.add_latent_stats(recs, summary, meta, decode)
        unit_dir = autointerp_units_dir(self.out_dir, rec_key, self.scoring_key)
        self.score_baseline(recs, unit_dir, meta, decode)
        if self.backends and llm_scores(self.params["llm"], variant, layer):
            chosen = llm_sample(recs, self.params["llm"]["llm_n_latents"], sampling["seed"])
            for backend in self.backends:
                self.score_llm(chosen, backend, unit_dir, meta, decode)

    def add_latent_stats(
        self, recs: Sequence[LatentRecord], summary: Mapping[str, Any], meta: dict, decode: Decode
    ) -> None:
        """One row of token statistics per sampled latent, with the SAE's sampling summary."""
        threshold = self.params["scoring"]["single_token_threshold"]
        for rec in recs:
            self.stat_rows.append(
                {
                    **meta,
                    **latent_stats_row(rec, decode, summary["ctx"], threshold),
                    "n_eligible": summary["n_eligible"],
                    "n_latents_total": summary["n_latents_total"],
                    "n_dead": summary.get("n_dead"),
                    "n_windows": summary.get("n_windows"),
                }
            )

    def score_baseline(self, recs: Sequence[LatentRecord], unit_dir: Path, meta: dict, decode: Decode) -> None:
        """The token baseline on every sampled latent, one stored unit per (latent, scorer)."""
        scoring = self.params["scoring"]
        for rec in recs:
            prof = bl.token_profile(rec, scoring["top_k_tokens"])
            self.explanations[(meta["model"], meta["variant"], meta["layer"], rec.latent, bl.BASELINE_NAME)] = (
                bl.describe(prof, decode)
            )
            for scorer in scoring["scorers"]:
                res = _unit(
                    unit_file(unit_dir, bl.BASELINE_NAME, rec.latent, scorer),
                    lambda rec=rec, scorer=scorer, prof=prof: {
                        "rows": bl.score_baseline(
                            rec, scorer, seed=scoring["seed"], mark_frac=scoring["mark_frac"], meta=meta, profile=prof
                        )
                    },
                )
                self.ex_rows += res["rows"]

    def score_llm(
        self, chosen: Sequence[LatentRecord], backend: LLMBackend, unit_dir: Path, meta: dict, decode: Decode
    ) -> None:
        """``backend`` explains and scores each chosen latent; an explanation and each scorer's answers are one
        stored unit each (answers none of which parsed are not stored, so a rerun asks again)."""
        scoring = self.params["scoring"]
        desc = f"{meta['variant']} L{meta['layer']} {backend.name}"
        for rec in _progress(chosen, total=len(chosen), desc=desc, enabled=self.progress):
            exp = _unit(
                unit_file(unit_dir, backend.name, rec.latent, "explanation"),
                lambda rec=rec: dict(
                    zip(
                        ("explanation", "raw"),
                        explain(rec, backend, decode, scoring["mark_frac"], scoring["explainer_max_tokens"]),
                        strict=True,
                    )
                ),
            )
            self.explanations[(meta["model"], meta["variant"], meta["layer"], rec.latent, backend.name)] = exp[
                "explanation"
            ]
            for scorer in scoring["scorers"]:
                res = _unit(
                    unit_file(unit_dir, backend.name, rec.latent, scorer),
                    lambda rec=rec, scorer=scorer, exp=exp: {
                        "rows": score_with_backend(
                            rec,
                            exp["explanation"],
                            backend,
                            scorer,
                            decode,
                            batch_size=scoring["batch_size"],
                            seed=scoring["seed"],
                            mark_frac=scoring["mark_frac"],
                            meta=meta,
                        )
                    },
                    keep=_answered,
                )
                self.ex_rows += res["rows"]

    def result(self, tables_dir: Path, t0: float) -> AutointerpResult:
        """The run's tables, written to ``tables_dir``; :class:`AnswersUnparsable` (after writing them) when a
        backend's share of unparsable answers exceeds ``max_unparsable_share``."""
        examples = examples_frame(self.ex_rows)
        latent_stats = pd.DataFrame(self.stat_rows)
        latents = per_latent_table(examples, latent_stats, self.explanations)
        unparsable = unparsable_table(examples)
        p = self.params
        table_params = {
            "sampling": p["sampling"],
            "scoring": p["scoring"],
            "llm": p["llm"],
            "backends": [b.name for b in self.backends],
        }
        paths = {
            name: save_table(df, table_file(tables_dir, name), table_params)
            for name, df in (
                ("examples", examples),
                ("latents", latents),
                ("latent_stats", latent_stats),
                ("unparsable", unparsable),
            )
        }
        check_unparsable(examples, self.backends, float(p["limits"]["max_unparsable_share"]))
        return AutointerpResult(
            examples=examples,
            latents=latents,
            latent_stats=latent_stats,
            unparsable=unparsable,
            records=self.records,
            explanations=self.explanations,
            paths=paths,
            runtime_s=time.time() - t0,
            params=table_params,
        )


def run_autointerp(
    cfg: Mapping[str, Any],
    runs: pd.DataFrame,
    backends: Sequence[LLMBackend] = (),
    out_dir: str | Path = "autointerp",
    decoders: Mapping[str, Decode] | Callable[[str], Decode] | None = None,
    loaders: tuple[Callable, Callable] | None = None,
    progress: bool = True,
    tables_dir: str | Path | None = None,
) -> AutointerpResult:
    """Run the token baseline on every SAE in ``runs`` and each LLM backend on a sample of latents.

    ``cfg``: the resolved 04_autointerp parameters (any mapping with every key the run reads).
    ``runs``: one row per SAE with columns model, variant, layer, sae_dir, cache_dir.
    ``decoders``: model name -> token decoder (default: ``rsae_utils.subject.models.load_tokenizer``).
    ``out_dir`` holds the records and the scored units (reused when their keys match); the tables go to
    ``tables_dir`` (default ``paths.autointerp_tables_dir(out_dir)``), so a run over part of another run's SAEs can
    reuse its work without replacing its tables.
    """
    t0 = time.time()
    validate_runs(runs)
    out_dir = Path(out_dir)
    params = run_params(cfg)
    check_backends(runs, params["llm"], backends)
    run = AutointerpRun(
        out_dir,
        params,
        backends,
        loaders or (load_sae_folder, open_cache_folder),
        strict=loaders is None,
        decode_of=_decoder_factory(decoders),
        progress=progress,
    )
    runs = runs.sort_values(["model", "variant", "layer"], kind="stable").reset_index(drop=True)
    for _, row in _progress(runs.iterrows(), total=len(runs), desc="SAEs", enabled=progress):
        run.score_sae(row)
    return run.result(Path(tables_dir) if tables_dir is not None else autointerp_tables_dir(out_dir), t0)


def load_results(out_dir: str | Path) -> AutointerpResult:
    """The tables and records a finished :func:`run_autointerp` left in ``out_dir`` (what notebook 05 reads)."""
    out_dir = Path(out_dir)
    files = {
        n: table_file(autointerp_tables_dir(out_dir), n) for n in ("examples", "latents", "latent_stats", "unparsable")
    }
    tables = {n: load_table(f) for n, f in files.items()}
    records: dict[tuple[str, str, int], list[LatentRecord]] = {}
    for f in sorted(autointerp_records_root(out_dir).glob("*/records.json")):
        data = read_json(f)
        s = data["summary"]
        key = (str(s["model"]), str(s["variant"]), int(s["layer"]))
        ls = tables["latent_stats"]
        if ((ls.model == key[0]) & (ls.variant == key[1]) & (ls.layer == key[2])).any():
            records[key] = [LatentRecord.from_dict(d) for d in data["records"]]
    return AutointerpResult(
        examples=tables["examples"],
        latents=tables["latents"],
        latent_stats=tables["latent_stats"],
        unparsable=tables["unparsable"],
        records=records,
        paths=files,
        params=read_json(table_manifest(files["latents"]))["params"],
    )


def llm_sample(recs: Sequence[LatentRecord], n: int, seed: int) -> list[LatentRecord]:
    """``n`` records drawn at random (seeded); the same latents for every backend."""
    if n >= len(recs):
        return list(recs)
    idx = np.sort(np.random.default_rng([seed, 7]).choice(len(recs), size=n, replace=False))
    return [recs[i] for i in idx]


def token_decoder(model: str) -> Decode:
    """The token decoder of ``model`` (its tokenizer, loaded without the weights)."""
    return TokenDecoder(load_tokenizer(model))


# --------------------------------------------------------------------------------------------------------------
def _decoder_factory(decoders: Mapping[str, Decode] | Callable[[str], Decode] | None) -> Callable[[str], Decode]:
    memo: dict[str, Decode] = {}

    def get(model: str) -> Decode:
        if model not in memo:
            if decoders is None:
                memo[model] = token_decoder(model)
            elif isinstance(decoders, Mapping):
                memo[model] = decoders[model]
            else:
                memo[model] = decoders(model)
        return memo[model]

    return get


def _progress(it: Iterable, total: int, desc: str, enabled: bool) -> Iterable:
    if not enabled:
        return it
    return tqdm(it, total=total, desc=desc, leave=False, mininterval=2.0)
