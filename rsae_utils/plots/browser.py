"""A self-contained offline HTML browser of scored latents (one file, inline CSS and JS, no network).

Pick a variant and a layer; the left list shows the sampled latents with their token entropy, single-token flag
and AUROCs; clicking one shows its explanations (per backend), its scores, and its top explainer windows with
each token's background shaded by its activation (darker = stronger; hover a token for its value).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from rsae_utils.autointerp.examples import LatentRecord
from rsae_utils.autointerp.prompts import Decode
from rsae_utils.store import atomic_write_text

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#222}
header{padding:10px 16px;background:#f4f4f6;border-bottom:1px solid #ddd}
header h1{font-size:17px;margin:0 0 4px}header p{margin:2px 0;font-size:12px;color:#555}
#bar{display:flex;gap:12px;align-items:center;margin-top:6px;font-size:13px}
#main{display:flex;height:calc(100vh - 110px)}
#list{width:420px;overflow:auto;border-right:1px solid #ddd;font-size:12px}
#list table{border-collapse:collapse;width:100%}#list td,#list th{padding:3px 5px;border-bottom:1px solid #eee}
#list th{position:sticky;top:0;background:#fafafa;text-align:left}
#list tr.row:hover{background:#eef4ff;cursor:pointer}#list tr.sel{background:#dde8ff}
#detail{flex:1;overflow:auto;padding:10px 16px;font-size:13px}
.ex{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;white-space:pre-wrap;margin:4px 0;
padding:4px;border:1px solid #eee;border-radius:3px;line-height:1.7}
.tok{border-radius:2px}.expl{margin:3px 0}.expl b{display:inline-block;min-width:230px}
.scores td,.scores th{padding:2px 8px;border-bottom:1px solid #eee;text-align:left}
.muted{color:#888}
"""

_JS = """
const D = JSON.parse(document.getElementById('data').textContent);
const vSel = document.getElementById('variant'), lSel = document.getElementById('layer');
const fmt = x => (x === null || x === undefined || Number.isNaN(x)) ? '–' : (+x).toFixed(2);
function opt(sel, values, labels){ sel.innerHTML=''; values.forEach((v,i)=>{const o=document.createElement('option');
  o.value=v; o.textContent=labels?labels[i]:v; sel.appendChild(o);}); }
const variants = [...new Set(D.saes.map(s=>s.variant))];
opt(vSel, variants, variants.map(v=>D.labels[v]||v));
function layersFor(v){ return D.saes.filter(s=>s.variant===v).map(s=>s.layer).sort((a,b)=>a-b); }
function current(){ return D.saes.find(s=>s.variant===vSel.value && String(s.layer)===lSel.value); }
function el(tag, text, cls){ const e=document.createElement(tag); if(text!==undefined) e.textContent=text;
  if(cls) e.className=cls; return e; }
function renderList(){
  const sae = current(), box = document.getElementById('list'); box.innerHTML='';
  if(!sae){ box.appendChild(el('p','no SAE','muted')); return; }
  const t = el('table'), h = el('tr');
  ['latent','entropy','1-tok', ...D.columns.map(c=>c.label)].forEach(c=>h.appendChild(el('th',c)));
  t.appendChild(h);
  sae.latents.forEach((L,i)=>{ const r=el('tr',undefined,'row');
    r.onclick=()=>{ [...t.querySelectorAll('tr.sel')].forEach(x=>x.classList.remove('sel'));
      r.classList.add('sel'); renderLatent(L); };
    r.appendChild(el('td', L.latent)); r.appendChild(el('td', fmt(L.entropy)));
    r.appendChild(el('td', L.single_token ? 'yes' : ''));
    D.columns.forEach(c=>r.appendChild(el('td', fmt((L.scores[c.key]||{}).auroc))));
    t.appendChild(r); if(i===0){ r.classList.add('sel'); renderLatent(L);} });
  box.appendChild(t);
}
function renderLatent(L){
  const d = document.getElementById('detail'); d.innerHTML='';
  d.appendChild(el('h3', `Latent ${L.latent}`));
  d.appendChild(el('p', `token entropy ${fmt(L.entropy)} nats · top-token share ${fmt(L.top_share)} · `+
    `position concentration ${fmt(L.position)} · active in ${L.n_active} windows · `+
    `top tokens: ${L.top_tokens}`, 'muted'));
  Object.entries(L.explanations).forEach(([b,t])=>{ const p=el('p',undefined,'expl'); p.appendChild(el('b',b));
    p.appendChild(document.createTextNode(t)); d.appendChild(p); });
  const st = el('table',undefined,'scores'), h = el('tr');
  ['scorer','backend','AUROC','balanced acc.','scored','unparsable'].forEach(c=>h.appendChild(el('th',c)));
  st.appendChild(h);
  Object.values(L.scores).forEach(s=>{ const r=el('tr'); [s.scorer,s.backend,fmt(s.auroc),fmt(s.bal_acc),
    s.n,s.n_unparsable].forEach(v=>r.appendChild(el('td',v))); st.appendChild(r); });
  d.appendChild(st);
  d.appendChild(el('h4', 'Top activating windows (explainer examples)'));
  const top = Math.max(1e-9, ...L.examples.map(e=>e.max));
  L.examples.forEach(e=>{ const div=el('div',undefined,'ex');
    e.toks.forEach((t,i)=>{ const s=el('span',t,'tok'); const a=e.acts[i];
      if(a>0){ s.style.background=`rgba(230,85,13,${Math.min(1,0.12+0.88*a/top).toFixed(3)})`; s.title=a.toFixed(3);}
      div.appendChild(s); });
    div.appendChild(el('span', `  max ${fmt(e.max)}`, 'muted')); d.appendChild(div); });
}
vSel.onchange = ()=>{ const ls=layersFor(vSel.value); opt(lSel, ls.map(String)); renderList(); };
lSel.onchange = renderList;
vSel.onchange();
"""


def _num(x: object) -> float | None:
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


REPLACEMENT = "\ufffd"
MAX_CHAR_TOKENS = 8  # a UTF-8 character has at most 4 bytes; byte-level tokens may add a little around them


def join_split_characters(
    ids: Sequence[int], strs: Sequence[str], acts: Sequence[float], decode_run: Callable[[Sequence[int]], str] | None
) -> tuple[list[str], list[float]]:
    """Join tokens that each hold part of one multi-byte character (shown alone as U+FFFD) into one display
    token, decoded together; its activation is the run's largest. Without ``decode_run`` nothing is joined."""
    toks, vals = list(strs), [float(a) for a in acts]
    if decode_run is None or not any(REPLACEMENT in t for t in toks):
        return toks, vals
    out_t: list[str] = []
    out_a: list[float] = []
    i = 0
    while i < len(toks):
        j = i + 1
        if REPLACEMENT in toks[i]:
            for end in range(i + 2, min(i + MAX_CHAR_TOKENS, len(toks)) + 1):
                joined = decode_run(ids[i:end])
                if REPLACEMENT not in joined:
                    out_t.append(joined)
                    out_a.append(max(vals[i:end]))
                    i = end
                    break
            else:
                out_t.append(toks[i])
                out_a.append(vals[i])
                i = j
            continue
        out_t.append(toks[i])
        out_a.append(vals[i])
        i = j
    return out_t, out_a


def _example(w, decode: Decode) -> dict:
    toks, acts = join_split_characters(w.tokens, decode(w.tokens), w.acts, getattr(decode, "text", None))
    return {"toks": toks, "acts": [round(a, 3) for a in acts], "max": round(w.max_act, 3)}


def browser_data(
    latents: pd.DataFrame,
    records: Mapping[tuple[str, str, int], Sequence[LatentRecord]],
    decode_of: Callable[[str], Decode],
    max_latents: int = 30,
    n_examples: int = 10,
    variant_labels: Mapping[str, str] | None = None,
) -> dict:
    """The JSON the page renders: per SAE, up to ``max_latents`` latents (LLM-scored ones first)."""
    columns = []
    if not latents.empty:
        for (scorer, backend), _ in latents.groupby(["scorer", "backend"], sort=True):
            columns.append({"key": f"{scorer}|{backend}", "label": f"{scorer[:3]}·{backend.split(':')[-1][:14]}"})
    saes = []
    for (model, variant, layer), recs in sorted(records.items()):
        decode = decode_of(model)
        sub = latents[(latents.model == model) & (latents.variant == variant) & (latents.layer == layer)]
        llm_scored = set(sub.loc[sub.backend != "token-baseline", "latent"].astype(int))
        ordered = sorted(recs, key=lambda r: (r.latent not in llm_scored, r.latent))[:max_latents]
        items = []
        for rec in ordered:
            rows = sub[sub.latent == rec.latent]
            first = rows.iloc[0] if len(rows) else None
            items.append(
                {
                    "latent": rec.latent,
                    "entropy": _num(first["entropy_nats"]) if first is not None else None,
                    "top_share": _num(first["top_token_share"]) if first is not None else None,
                    "position": _num(first["position_concentration"]) if first is not None else None,
                    "single_token": bool(first["single_token"]) if first is not None else False,
                    "top_tokens": str(first["top_tokens"]) if first is not None else "",
                    "n_active": rec.n_active_windows,
                    "explanations": {
                        str(r.backend): str(r.explanation) for r in rows.drop_duplicates("backend").itertuples()
                    },
                    "scores": {
                        f"{r.scorer}|{r.backend}": {
                            "scorer": r.scorer,
                            "backend": r.backend,
                            "auroc": _num(r.auroc),
                            "bal_acc": _num(r.balanced_accuracy),
                            "n": int(r.n_scored),
                            "n_unparsable": int(r.n_unparsable),
                        }
                        for r in rows.itertuples()
                    },
                    "examples": [_example(w, decode) for w in rec.explain[:n_examples]],
                }
            )
        saes.append({"model": model, "variant": variant, "layer": int(layer), "latents": items})
    return {"saes": saes, "columns": columns, "labels": dict(variant_labels or {})}


def render_browser(data: dict, title: str = "Latent browser", note: str = "") -> str:
    """The complete HTML page for ``data`` (from :func:`browser_data`)."""
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(note)}</p>"
        "<div id='bar'><label>Variant <select id='variant'></select></label>"
        "<label>Layer <select id='layer'></select></label></div></header>"
        "<div id='main'><div id='list'></div><div id='detail'></div></div>"
        f"<script type='application/json' id='data'>{payload}</script>"
        f"<script>{_JS}</script></body></html>"
    )


def write_browser(
    path: str | Path,
    latents: pd.DataFrame,
    records: Mapping[tuple[str, str, int], Sequence[LatentRecord]],
    decode_of: Callable[[str], Decode],
    title: str = "Latent browser",
    note: str = "",
    **kw,
) -> Path:
    """Write the browser page atomically to ``path``; ``kw`` goes to :func:`browser_data`."""
    return atomic_write_text(path, render_browser(browser_data(latents, records, decode_of, **kw), title, note))
