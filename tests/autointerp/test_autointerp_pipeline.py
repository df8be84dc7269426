"""The pipeline on in-memory SAEs and caches: tidy tables, resumption, unparsable answers, LLM sampling."""

import numpy as np
import pandas as pd
import pytest
import torch
from autointerp_helpers import ScriptedBackend, decode

from rsae_utils.autointerp.pipeline import run_autointerp
from rsae_utils.autointerp.synthetic import toy_cache_acts
from rsae_utils.errors import ParameterError
from rsae_utils.params import resolve

# A resolved 04_autointerp config (the pipeline keeps no defaults of its own), sized for the toy caches.
CFG = resolve(
    "04_autointerp",
    "smoke",
    dict(
        n_latents=4,
        min_examples=9,
        n_explain=6,
        explain_pool=10,
        n_bins=3,
        per_bin=2,
        n_negatives=6,
        window_len=32,
        llm_n_latents=2,
        llm_variants=["trained"],
        llm_layers=None,
        scorers=["detection", "fuzzing"],
        seed=0,
        llm_backends=[],
    ),
)


class MemCache:
    def __init__(self, tokens, acts):
        self._tokens, self._acts = tokens, acts
        self.manifest = {"model": "toy", "variant": "v", "layers": [0, 1], "ctx": tokens.shape[1]}

    def tokens(self, split):
        assert split == "test"
        return self._tokens

    def acts(self, layer, split):
        assert split == "test"
        return self._acts * (1 + 0.1 * layer)


@pytest.fixture
def world(tmp_path):
    objs = {}
    rows = []
    for i, variant in enumerate(["trained", "rerandomized_incl_emb"]):
        tokens, acts, sae = toy_cache_acts(n_seq=16, ctx=64, seed=i)
        objs[f"cache-{variant}"] = MemCache(tokens, acts)
        objs[f"sae-{variant}"] = sae
        for layer in (0, 1):
            rows.append(
                dict(model="toy", variant=variant, layer=layer, sae_dir=f"sae-{variant}", cache_dir=f"cache-{variant}")
            )
    loaders = (lambda p: objs[p], lambda p: objs[p])
    return pd.DataFrame(rows), loaders, tmp_path / "ai"


class Failing(ScriptedBackend):
    def __init__(self, fail_after):
        super().__init__()
        self.fail_after = fail_after

    def answer_probabilities(self, messages, n_answers):
        if sum(c[0] == "answer" for c in self.calls) >= self.fail_after:
            raise ConnectionError("endpoint went away")
        return super().answer_probabilities(messages, n_answers)


def test_partial_config_is_refused_naming_the_missing_parameters(world):
    runs, loaders, out = world
    with pytest.raises(ParameterError, match="lacks parameter.*explainer_max_tokens"):
        run_autointerp({k: v for k, v in CFG.items() if k != "explainer_max_tokens"}, runs, [], out, loaders=loaders)


def test_tables_and_resume(world):
    runs, loaders, out = world
    be = ScriptedBackend(broken={0: None})
    res = run_autointerp(CFG, runs, [be], out, decoders=lambda m: decode, loaders=loaders, progress=False)
    ex, lat = res.examples, res.latents
    assert set(ex["backend"]) == {"token-baseline", "test:scripted"}
    assert set(ex.loc[ex.backend == "test:scripted", "variant"]) == {"trained"}
    assert {"model", "variant", "layer", "latent", "scorer", "backend", "label", "probability", "unparsable"} <= set(ex)
    # every SAE: 4 latents x 2 scorers for the baseline; LLM 2 latents x 2 scorers on the trained SAEs
    n_base = lat[lat.backend == "token-baseline"].groupby(["variant", "layer"]).size()
    assert (n_base == 4 * 2).all() and len(n_base) == 4
    n_llm = lat[lat.backend == "test:scripted"].groupby(["variant", "layer"]).size()
    assert n_llm.to_dict() == {("trained", 0): 4, ("trained", 1): 4}
    assert lat["auroc"].between(0, 1).all() and lat["entropy_nats"].notna().all()
    assert lat["explanation"].str.len().gt(0).all()
    # one batch of 5 answered None: counted, not raised
    assert res.unparsable["n_unparsable"].sum() == 5
    for name in ("examples", "latents", "latent_stats", "unparsable"):
        assert (out / "tables" / f"{name}.csv").exists()
        assert (out / "tables" / f"{name}.csv.manifest.json").exists()
    fresh = {n: (out / "tables" / f"{n}.csv").read_bytes() for n in ("examples", "latents", "latent_stats")}
    assert fresh["examples"].startswith(b"model,variant,layer,latent,scorer,backend,window,kind,bin,label,")
    # rerun: every unit reused, the backend is never called, same tables, byte for byte (replayed units hold
    # their rows with sorted keys: the columns keep one order all the same)
    be2 = ScriptedBackend()
    res2 = run_autointerp(CFG, runs, [be2], out, decoders=lambda m: decode, loaders=loaders, progress=False)
    assert be2.calls == []
    pd.testing.assert_frame_equal(res.latents, res2.latents)
    pd.testing.assert_frame_equal(res.examples, res2.examples)
    assert {n: (out / "tables" / f"{n}.csv").read_bytes() for n in fresh} == fresh


def test_interrupted_run_loses_nothing(world):
    runs, loaders, out = world
    with pytest.raises(ConnectionError):
        run_autointerp(
            CFG, runs, [Failing(fail_after=7)], out, decoders=lambda m: decode, loaders=loaders, progress=False
        )
    done = sorted(p.name for p in out.glob("units/*/*/test_scripted/*.json"))
    assert any(n.endswith(".detection.json") for n in done)
    be = ScriptedBackend()
    res = run_autointerp(CFG, runs, [be], out, decoders=lambda m: decode, loaders=loaders, progress=False)
    full = ScriptedBackend()
    run_autointerp(
        CFG, runs, [full], tmp_out := out.parent / "fresh", decoders=lambda m: decode, loaders=loaders, progress=False
    )
    n_answers = lambda b: sum(c[0] == "answer" for c in b.calls)  # noqa: E731
    # units of 3 batches each: the 6 answers of the two finished units are reused, the in-flight one redone
    assert n_answers(be) == n_answers(full) - 6
    fresh = pd.read_csv(tmp_out / "tables" / "latents.csv")
    assert np.allclose(res.latents["auroc"].to_numpy(), fresh["auroc"].to_numpy(), equal_nan=True)


def test_single_token_latents_score_high(world):
    runs, loaders, out = world
    res = run_autointerp(
        {**CFG, "n_latents": 24, "min_examples": 4},
        runs.iloc[:1],
        [],
        out,
        decoders=lambda m: decode,
        loaders=loaders,
        progress=False,
    )
    lat = res.latents
    tok = lat[lat.single_token]
    assert len(tok) > 0 and (tok["auroc"] > 0.95).all()
    assert (tok["entropy_nats"] < 0.4).all()
    assert torch.is_tensor(loaders[1]("cache-trained").tokens("test"))


def test_load_results_and_browser(world):
    import json
    import re

    from rsae_utils.autointerp.pipeline import load_results
    from rsae_utils.plots.browser import write_browser

    runs, loaders, out = world
    res = run_autointerp(
        CFG, runs, [ScriptedBackend()], out, decoders=lambda m: decode, loaders=loaders, progress=False
    )
    back = load_results(out)
    assert len(back.latents) == len(res.latents) and set(back.records) == set(res.records)
    assert back.records[("toy", "trained", 0)][0].to_dict() == res.records[("toy", "trained", 0)][0].to_dict()
    page = write_browser(out / "b.html", back.latents, back.records, lambda m: decode, max_latents=3, n_examples=2)
    text = page.read_text()
    assert "http://" not in text and "https://" not in text and "<link" not in text  # nothing fetched
    data = json.loads(re.search(r"id='data'>(.*?)</script>", text, flags=re.S).group(1).replace("<\\/", "</"))
    assert {(s["variant"], s["layer"]) for s in data["saes"]} == {
        (v, la) for v in ("trained", "rerandomized_incl_emb") for la in (0, 1)
    }
    sae = next(s for s in data["saes"] if s["variant"] == "trained")
    assert len(sae["latents"]) == 3 and len(sae["latents"][0]["examples"]) == 2
    # LLM-scored latents are listed first and carry both explanations
    assert set(sae["latents"][0]["explanations"]) == {"token-baseline", "test:scripted"}
    ex = sae["latents"][0]["examples"][0]
    assert len(ex["toks"]) == len(ex["acts"]) == 32 and max(ex["acts"]) == pytest.approx(ex["max"], abs=1e-3)


# A minimal DOM, enough for the browser script: elements with children, text, style and select values.
_DOM_STUB = r"""
class El { constructor(t){ this.tag=t; this.children=[]; this.style={}; this.text='';
    this.classList={add(){}, remove(){}}; }
  appendChild(c){ this.children.push(c);
    if(this.value===undefined && c.value!==undefined) this.value=c.value; return c; }
  set textContent(v){ this.text=String(v); } get textContent(){ return this.text; }
  set innerHTML(v){ this.children=[]; this.value=undefined; } get innerHTML(){ return ''; }
  querySelectorAll(){ return []; } }
const els = {};
global.document = { getElementById(id){ return id==='data' ? {textContent: DATA} : (els[id] = els[id] || new El(id)); },
  createElement(t){ return new El(t); }, createTextNode(t){ return new El('#text'); } };
"""


@pytest.mark.skipif(__import__("shutil").which("node") is None, reason="node not installed")
def test_browser_script_runs(world, tmp_path):
    """The page's script parses and, run on its own embedded data, lists the latents and shows the first one."""
    import json
    import re
    import subprocess

    from rsae_utils.plots.browser import write_browser

    runs, loaders, out = world
    res = run_autointerp(
        CFG, runs, [ScriptedBackend()], out, decoders=lambda m: decode, loaders=loaders, progress=False
    )
    page = write_browser(tmp_path / "b.html", res.latents, res.records, lambda m: decode, max_latents=3).read_text()
    data = re.search(r"id='data'>(.*?)</script>", page, flags=re.S).group(1).replace("<\\/", "</")
    script = re.findall(r"<script>(.*?)</script>", page, flags=re.S)[-1]
    js = tmp_path / "run.js"
    js.write_text(
        f"const DATA = {json.dumps(data)};\n{_DOM_STUB}\n{script}\n"
        "console.log(JSON.stringify({rows: els.list.children[0].children.length, detail: els.detail.children.length,"
        " title: els.detail.children[0].text}));"
    )
    done = subprocess.run(["node", str(js)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout.strip().splitlines()[-1])
    assert shown["rows"] == 1 + 3  # header + 3 latents
    assert shown["detail"] > 3 and shown["title"].startswith("Latent ")


def test_figure_tables(world):
    from rsae_utils.plots import autointerp as F
    from rsae_utils.studies.roc.tables import gap_table, latent_summary, roc_tables

    runs, loaders, out = world
    res = run_autointerp(
        CFG, runs, [ScriptedBackend()], out, decoders=lambda m: decode, loaders=loaders, progress=False
    )
    bands, aucs = roc_tables(res.examples, n_boot=10, n_grid=11, seed=0)
    n_groups = res.examples.groupby(["backend", "scorer", "variant", "layer"]).ngroups
    assert len(aucs) == n_groups and len(bands) == 11 * n_groups
    assert ((aucs.auroc_lo <= aucs.auroc) & (aucs.auroc <= aucs.auroc_hi)).all()
    summ = latent_summary(res.latent_stats)
    assert len(summ) == 4 and summ["single_token_share"].between(0, 1).all()
    gaps = gap_table(res.latents)
    assert set(gaps.variant) == {"trained"} and set(gaps.backend) == {"test:scripted"}
    # the gap is the mean paired difference of per-latent AUROCs
    lat = res.latents
    llm = lat[(lat.backend == "test:scripted") & (lat.scorer == "detection")].set_index(["layer", "latent"]).auroc
    base = lat[(lat.backend == "token-baseline") & (lat.scorer == "detection")].set_index(["layer", "latent"]).auroc
    g = gaps[gaps.scorer == "detection"].iloc[0]
    assert g.gap == pytest.approx((llm - base.loc[llm.index]).mean())
    # A variant's own label (here a made-up stand-in) reaches every figure's legend, tick labels and hover names.
    labels = {"trained": "Trained (stand-in label)"}
    for fig in (
        F.plot_roc_grid(bands, aucs, "test:scripted", labels=labels),
        F.plot_auroc_vs_layer(aucs, labels=labels),
        F.plot_entropy_vs_layer(summ, labels=labels),
        F.plot_entropy_vs_auroc(lat, labels=labels),
        F.plot_gap(gaps, labels=labels),
    ):
        texts = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
        assert "Trained (stand-in label)" in texts and "Trained" not in texts
    assert {tr.name for tr in F.entropy_auroc_plotly(lat, labels=labels).data} >= {"Trained (stand-in label)"}
    # every panel of the AUROC-vs-layer figure spans all layers, also the panels of a backend with fewer
    fig = F.plot_auroc_vs_layer(aucs, labels=labels)
    assert len({ax.get_xlim() for ax in fig.axes}) == 1


def test_endpoint_down_fails_before_any_work(world, tmp_path):
    import socket
    import time

    from rsae_utils.autointerp.llm.spec import make_backend
    from rsae_utils.errors import BackendUnavailable

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    be = make_backend(f"openai:http://127.0.0.1:{port}/v1:some-model", cache_dir=tmp_path / "http")
    runs, loaders, out = world
    t0 = time.time()
    with pytest.raises(BackendUnavailable, match="cannot reach"):
        run_autointerp(CFG, runs, [be], out, decoders=lambda m: decode, loaders=loaders, progress=False)
    assert time.time() - t0 < 10 and not (out / "records").exists()


class Unparsable(ScriptedBackend):
    """Writes prose instead of answer lists: every answer is unparsable."""

    name = "test:unparsable"

    def answer_probabilities(self, messages, n_answers):
        self.calls.append(("answer", messages))
        return [None] * n_answers


def test_mostly_unparsable_answers_fail_the_run_and_are_not_stored(world):
    from rsae_utils.errors import AnswersUnparsable

    runs, loaders, out = world
    kw = dict(decoders=lambda m: decode, loaders=loaders, progress=False)
    be = Unparsable()
    with pytest.raises(AnswersUnparsable, match=r"test:unparsable: 100% of its \d+ answers.*max_unparsable_share=0\.5"):
        run_autointerp(CFG, runs, [be], out, **kw)
    assert (out / "tables" / "unparsable.csv").exists()  # written for inspection before failing
    assert not list(out.glob("units/*/*/test_unparsable/*.detection.json"))  # no void unit stored
    fixed = ScriptedBackend()
    fixed.name = be.name  # the same backend, now answering: everything is asked again
    res = run_autointerp(CFG, runs, [fixed], out, **kw)
    assert sum(c[0] == "answer" for c in fixed.calls) > 0 and res.unparsable["n_unparsable"].sum() == 0
    # the threshold is a parameter: 1.0 accepts anything
    run_autointerp({**CFG, "max_unparsable_share": 1.0}, runs, [Unparsable()], out.parent / "lax", **kw)


def test_endpoint_without_logprobs_fails_and_a_fixed_server_is_asked_again(world, tmp_path):
    from autointerp_helpers import StubEndpoint

    from rsae_utils.autointerp.llm.endpoint import OpenAIBackend
    from rsae_utils.errors import BackendError

    runs, loaders, out = world
    kw = dict(decoders=lambda m: decode, loaders=loaders, progress=False)
    stub = StubEndpoint(mode="no_logprobs")
    try:
        be = OpenAIBackend(stub.base_url, "stub-model", cache_dir=tmp_path / "llm")
        with pytest.raises(BackendError, match="no token logprobs"):
            run_autointerp(CFG, runs, [be], out, **kw)
        # refused by the run's logprobs check, before the explainer was asked (or its answer cached)
        assert stub.requests == 1 and not list((tmp_path / "llm").glob("??/*.json"))
        assert not list(out.glob("units/**/*.explanation.json"))
        stub.mode = "good"  # the server is fixed (e.g. restarted with logprobs on)
        n_before = stub.requests
        res = run_autointerp(
            CFG, runs, [OpenAIBackend(stub.base_url, "stub-model", cache_dir=tmp_path / "llm")], out, **kw
        )
        assert stub.requests > n_before
        mine = res.examples[res.examples.backend == be.name]
        assert len(mine) > 0 and not mine["unparsable"].any()
        # Replay: the server goes away; a fresh run (new output folder) is answered from the response cache.
        stub.stop()
        with pytest.warns(UserWarning, match="Replaying cached answers"):
            again = run_autointerp(
                CFG,
                runs,
                [OpenAIBackend(stub.base_url, "stub-model", cache_dir=tmp_path / "llm")],
                out.parent / "replay",
                **kw,
            )
        pd.testing.assert_frame_equal(again.latents, res.latents)
    finally:
        stub.stop()
