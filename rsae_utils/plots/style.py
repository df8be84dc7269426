"""The one plotting style: paper-look matplotlib (PNG + PDF), offline plotly HTML, variant colours, captions.

``save_figure`` writes a figure with its table and a manifest (parameters, versions, git revision, runtime)
next to it, so every committed figure says what made it. The plotly HTML files load ``plotly.min.js`` from beside
them (written once per folder, recorded in each manifest's ``assets``): still offline, a few kB each instead of
~4.6 MB of plotly.js apiece.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
from IPython import get_ipython  # noqa: E402
from IPython.display import Image, display  # noqa: E402
from plotly.offline import get_plotlyjs  # noqa: E402

from rsae_utils.paths import figures_dir  # noqa: E402
from rsae_utils.repro import provenance  # noqa: E402
from rsae_utils.store import atomic_write_bytes, atomic_write_text, file_sha256, write_json  # noqa: E402

# One colour per model variant (names and labels: rsae_utils.subject.variants), the same in every figure.
VARIANT_COLORS = {
    "trained": "#1f77b4",
    "rerandomized_incl_emb": "#d62728",
    "rerandomized_excl_emb": "#ff7f0e",
    "step0": "#2ca02c",
    "control": "#7f7f7f",
}
# Generic series colours (colour-blind safe, Okabe-Ito) for anything that is not a model variant.
SERIES_COLORS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

PAPER_RC = {
    "figure.dpi": 110,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "lines.linewidth": 1.5,
    "pdf.fonttype": 42,  # embed TrueType so the PDF text stays editable and searchable
    # Reproducible PDFs: no creation date in the file.
    "svg.hashsalt": "rsae",
}


PLOTLY_JS = "plotly.min.js"  # the one copy of plotly.js the HTML figures of a folder share


@lru_cache(maxsize=1)
def _plotly_js() -> tuple[bytes, str]:
    data = get_plotlyjs().encode("utf-8")
    return data, hashlib.sha256(data).hexdigest()


def write_plotly_js(folder: Path) -> tuple[Path, str]:
    """``folder/plotly.min.js`` (this plotly's bundle), written only when missing or different; (path, sha256)."""
    data, sha = _plotly_js()
    path = Path(folder) / PLOTLY_JS
    if not (path.is_file() and path.stat().st_size == len(data) and file_sha256(path) == sha):
        atomic_write_bytes(path, data)
    return path, sha


def use_paper_style() -> None:
    plt.rcParams.update(PAPER_RC)


def variant_color(variant: str) -> str:
    return VARIANT_COLORS.get(variant, "#9467bd")


def _caption(fig: Any, note: str) -> None:
    fig.text(0.0, -0.02, note, ha="left", va="top", fontsize=7, style="italic", wrap=True, transform=fig.transFigure)


def save_figure(
    fig: Any,
    name: str,
    cfg: Any,
    table: Any = None,
    plotly_fig: Any = None,
    note: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``name``.png/.pdf (and .html, .csv when given) plus ``name.manifest.json`` into the profile's figures dir.

    ``note`` is printed under the figure and in the HTML title: use it to say where this run differs from the
    paper (model, corpus, scorer). ``cfg`` is the notebook's resolved Config.
    """
    out = figures_dir(cfg.profile)
    paths: dict[str, Path] = {}
    assets: dict[str, str] = {}
    if note:
        _caption(fig, note)
    for ext in ("png", "pdf"):
        p = out / f"{name}.{ext}"
        buf = io.BytesIO()
        # Fixed metadata keeps reruns byte-stable where the backend allows it.
        meta = {"Software": None} if ext == "png" else {"CreationDate": None, "Producer": None}
        fig.savefig(buf, format=ext, metadata=meta)
        atomic_write_bytes(p, buf.getvalue())
        paths[ext] = p
        if ext == "png":
            show_in_notebook(buf.getvalue(), fig.get_figwidth())
    if plotly_fig is not None:
        if note:
            title = plotly_fig.layout.title.text or name
            plotly_fig.update_layout(title={"text": f"{title}<br><sup>{note}</sup>"})
        # "directory": <script src="plotly.min.js">, the file beside it (offline; no CDN).
        js, assets[PLOTLY_JS] = write_plotly_js(out)
        html = plotly_fig.to_html(include_plotlyjs="directory", full_html=True)
        paths["html"] = atomic_write_text(out / f"{name}.html", html)
    if table is not None:
        paths["csv"] = atomic_write_text(out / f"{name}.csv", table.to_csv(index=False))
    paths["manifest"] = _write_manifest(out, name, cfg, paths, note, {**(extra or {}), **_assets(assets)})
    return paths


def _assets(assets: Mapping[str, str]) -> dict[str, Any]:
    """The manifest's ``assets``: shared files a figure needs but does not own (never removed with it)."""
    return {"assets": {k: {"name": k, "sha256": v} for k, v in assets.items()}} if assets else {}


def show_in_notebook(png: bytes, width_in: float) -> None:
    """Inside a notebook kernel (papermill's too), show the PNG just written, byte for byte: the Agg backend shows
    nothing itself, and the executed copies readers open on GitHub should carry the committed figure. Elsewhere
    (scripts, tests) nothing happens."""
    shell = get_ipython()
    if shell is not None and hasattr(shell, "kernel"):
        display(Image(data=png, format="png", width=int(width_in * 100)))


def save_report(
    name: str,
    cfg: Any,
    table: Any,
    texts: Mapping[str, str] | None = None,
    note: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """A figure-less output: ``name.csv`` from ``table`` and ``name.<ext>`` for each text of ``texts`` (``{"md":
    markdown}``), with the same manifest as :func:`save_figure` (so the runner records and tidies them alike)."""
    out = figures_dir(cfg.profile)
    paths: dict[str, Path] = {"csv": atomic_write_text(out / f"{name}.csv", table.to_csv(index=False))}
    for ext, text in (texts or {}).items():
        paths[ext] = atomic_write_text(out / f"{name}.{ext}", text)
    paths["manifest"] = _write_manifest(out, name, cfg, paths, note, extra)
    return paths


def _write_manifest(
    out: Path, name: str, cfg: Any, paths: Mapping[str, Path], note: str | None, extra: Mapping[str, Any] | None
) -> Path:
    started = getattr(cfg, "started", None)
    return write_json(
        out / f"{name}.manifest.json",
        {
            "figure": name,
            "notebook": cfg.notebook,
            "profile": cfg.profile,
            "params": dict(cfg),
            "note": note,
            "runtime_s": None if started is None else round(time.time() - started, 1),
            "files": {k: {"name": p.name, "sha256": file_sha256(p)} for k, p in paths.items()},
            "provenance": provenance(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **(dict(extra) if extra else {}),
        },
    )
