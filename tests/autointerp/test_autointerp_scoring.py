"""Prompts, fuzzing marks, the scorers over a deterministic backend, and the token-identity baseline."""

import numpy as np
import pytest
from autointerp_helpers import ScriptedBackend, decode

from rsae_utils.autointerp import baseline, prompts, scorers
from rsae_utils.autointerp.examples import latent_record
from rsae_utils.autointerp.stats import auroc
from rsae_utils.autointerp.synthetic import synthetic_sparse_acts

PAPER_COUNTS = dict(n_explain=40, explain_pool=100, n_bins=10, per_bin=10, n_negatives=100)


def test_active_mask_and_mark_text_exact():
    acts = [0, 1.0, 0.2, 0.5, 0, 0.31]
    mask = prompts.active_mask(acts, 0.3)
    assert mask.tolist() == [False, True, False, True, False, True]
    assert prompts.mark_text(list("abcdef"), mask) == "a<<b>>c<<d>>e<<f>>"
    assert prompts.mark_text(list("abc"), [True, True, False]) == "<<ab>>c"
    assert prompts.mark_text(["x\n", "y"], [False, True]) == "x\\n<<y>>"
    assert not prompts.active_mask([0, 0, 0]).any()


def test_negative_mark_count_and_fuzz_marks():
    pos = [[1, 1, 1, 0], [1, 0, 0, 0], [0.5, 1, 0, 0]]  # 3, 1, 2 active -> mean 2
    assert prompts.n_negative_marks(pos) == 2
    assert prompts.n_negative_marks([[1, 1, 1], [1, 1, 0]]) == 3  # 2.5 rounds half up
    rng = np.random.default_rng(0)
    neg = prompts.fuzz_marks(np.zeros(32), 0, 2, rng)
    assert neg.sum() == 2
    assert prompts.fuzz_marks([0, 2.0, 0.1, 1.0], 1, 5, rng).tolist() == [False, True, False, True]


def test_fuzzing_marks_of_a_record():
    sp = synthetic_sparse_acts(n_seq=64, ctx=128, seed=0)
    rec = latent_record(sp, 0, n_explain=5, explain_pool=10, n_bins=4, per_bin=3, n_negatives=12)
    marks = scorers.fuzzing_marks(rec, seed=1)
    n = prompts.n_negative_marks([w.acts for w in rec.positives])
    for w in rec.positives:
        assert marks[w.window].tolist() == [a > 0 for a in w.acts]  # single-token latent: all actives marked
    for w in rec.negatives:
        assert marks[w.window].sum() == n
    assert {k: v.tolist() for k, v in scorers.fuzzing_marks(rec, seed=1).items()} == {
        k: v.tolist() for k, v in marks.items()
    }


def test_prompts_contain_batch():
    msgs = prompts.detection_messages("dogs", ["a", "b", "c"])
    assert "Example 3: c" in msgs[1]["content"] and "list of 3 numbers" in msgs[1]["content"]
    msgs = prompts.fuzzing_messages("dogs", ["<<a>>", "b"])
    assert msgs[0]["role"] == "system" and "Example 1: <<a>>" in msgs[1]["content"]
    assert prompts.parse_explanation("blah\nExplanation: 'the word dog'\n") == "the word dog"
    assert prompts.parse_explanation("  numbers and dates  ") == "numbers and dates"
    assert prompts.parse_explanation("") == "(no explanation)"
    assert (
        prompts.parse_explanation("The marked tokens are:\n- 'math'\n- 'tex'")
        == "The marked tokens are: - 'math' - 'tex'"
    )
    assert prompts.parse_explanation("x" * 300) == "x" * 200


def test_clean_probabilities():
    assert scorers.clean_probabilities([0.2, None, float("nan"), 1.5, "x"], 5) == [0.2, None, None, None, None]
    assert scorers.clean_probabilities([0.2, 0.3], 3) == [None] * 3
    assert scorers.clean_probabilities(None, 2) == [None, None]


@pytest.fixture(scope="module")
def sp():
    return synthetic_sparse_acts(n_seq=256, ctx=128, vocab=100, seed=0)


def test_scorers_with_deterministic_backend(sp):
    rec = latent_record(sp, 0, seed=0, **PAPER_COUNTS)
    be = ScriptedBackend(broken={0: [None] * 5, 1: [0.5, 0.5], 2: [None, 0.7, 0.7, 0.7, 0.7]})
    expl, raw = scorers.explain(rec, be, decode)
    assert expl == "t0" and raw.startswith("Sure")
    rows = scorers.score_with_backend(rec, expl, be, "detection", decode, batch_size=5, meta={"variant": "v"})
    n = len(rec.scoring)
    assert len(rows) == n and sum(c[0] == "answer" for c in be.calls) == -(-n // 5)
    assert {r["window"] for r in rows} == {w.window for w in rec.scoring}
    assert all(r["variant"] == "v" and r["backend"] == "test:scripted" for r in rows)
    assert sum(r["unparsable"] for r in rows) == 5 + 5 + 1
    assert all((r["probability"] is None) == r["unparsable"] for r in rows)
    ok = [r for r in rows if not r["unparsable"]]
    assert auroc([r["label"] for r in ok], [r["probability"] for r in ok]) > 0.99  # batch 2 answered 0.7s
    fz = scorers.score_with_backend(rec, expl, ScriptedBackend(), "fuzzing", decode)
    assert auroc([r["label"] for r in fz], [r["probability"] for r in fz]) > 0.95


def test_baseline_single_token_near_one_random_near_half(sp):
    rec = latent_record(sp, 0, seed=0, **PAPER_COUNTS)
    prof = baseline.token_profile(rec)
    assert prof.ids[0] == 0 and prof.share[0] == pytest.approx(1.0)
    assert "'0' 100%" in baseline.describe(prof, lambda ids: [str(i) for i in ids])
    for scorer in scorers.SCORERS:
        rows = baseline.score_baseline(rec, scorer)
        assert all(r["backend"] == "token-baseline" for r in rows)
        assert auroc([r["label"] for r in rows], [r["probability"] for r in rows]) > 0.98
    aucs = {s: [] for s in scorers.SCORERS}
    for lat in range(4, 8):  # the random latents
        rec = latent_record(sp, lat, seed=0, **PAPER_COUNTS)
        for scorer in scorers.SCORERS:
            rows = baseline.score_baseline(rec, scorer)
            aucs[scorer].append(auroc([r["label"] for r in rows], [r["probability"] for r in rows]))
    for scorer, vals in aucs.items():
        assert abs(np.mean(vals) - 0.5) < 0.1, (scorer, vals)


def test_batched_backend_path(sp):
    """Backends with answer_probabilities_many get every batch of a unit at once; a short reply is unparsable."""

    class Many(ScriptedBackend):
        def __init__(self, drop_last=False):
            super().__init__()
            self.many_calls = 0
            self.drop_last = drop_last

        def answer_probabilities_many(self, many, n_answers):
            self.many_calls += 1
            out = [self.answer_probabilities(m, n) for m, n in zip(many, n_answers)]
            return out[:-1] if self.drop_last else out

    rec = latent_record(sp, 0, seed=0, n_explain=5, explain_pool=10, n_bins=4, per_bin=3, n_negatives=12)
    be = Many()
    rows = scorers.score_with_backend(rec, "t0", be, "detection", decode)
    assert be.many_calls == 1 and not any(r["unparsable"] for r in rows)
    assert auroc([r["label"] for r in rows], [r["probability"] for r in rows]) == 1.0
    rows = scorers.score_with_backend(rec, "t0", Many(drop_last=True), "detection", decode)
    assert all(r["unparsable"] for r in rows)


def test_baseline_detection_is_a_probability_when_shares_round_above_one():
    """Shares normalised to 1 can sum to 1.0000000000000002; a window holding all their tokens scores exactly 1."""
    share = np.array([0.22222222222222224, 0.43589743589743596, 0.34188034188034194])  # mass / total, as fitted
    profile = baseline.TokenProfile(ids=np.array([1, 2, 3]), share=share)
    assert sum(profile.share_of().values()) > 1.0  # the rounding the score must not pass on
    assert baseline.detection_score(profile, [3, 1, 2, 2]) == 1.0
    assert baseline.detection_score(profile, [1, 9]) == pytest.approx(share[0])
