"""Corpus gathering (deterministic, deduplicated, filtered) and disjoint, deterministic token windows."""

from __future__ import annotations

import json
import random

import pytest
import torch

from rsae_utils.errors import ParameterError
from rsae_utils.subject.corpus import load_corpus
from rsae_utils.subject.models import load_tokenizer
from rsae_utils.subject.site_packages import clean_document, is_prose
from rsae_utils.subject.text import corpus_sha256
from rsae_utils.subject.windows import boundary_token_id, tokenize_windows

WORDS = [
    "river",
    "stone",
    "light",
    "quiet",
    "morning",
    "garden",
    "window",
    "letter",
    "paper",
    "music",
    "orange",
    "winter",
    "bridge",
    "forest",
    "candle",
    "silver",
    "harbor",
    "meadow",
    "thunder",
    "pencil",
    "mirror",
    "basket",
    "ladder",
    "blanket",
    "engine",
    "valley",
    "island",
    "marble",
    "feather",
    "rocket",
]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("tiny-random")


def _doc(i: int, n_words: int = 120) -> str:
    rng = random.Random(i)
    return f"Document {i}. " + " ".join(rng.choice(WORDS) for _ in range(n_words)) + "."


def _write_dir(path, n_docs=40, dup=True):
    path.mkdir(parents=True, exist_ok=True)
    for i in range(n_docs // 2):
        (path / f"doc{i:03d}.txt").write_text(_doc(i))
    with (path / "more.jsonl").open("w") as fh:
        for i in range(n_docs // 2, n_docs):
            fh.write(json.dumps({"text": _doc(i), "meta": i}) + "\n")
        if dup:
            fh.write(json.dumps({"text": _doc(0)}) + "\n")  # duplicate of doc000.txt
    if dup:
        (path / "copy.txt").write_text(_doc(1) + "\r\n\n\n\n")  # duplicate after normalisation
    return path


def test_site_packages_corpus_deterministic_and_clean(tmp_path, monkeypatch):
    monkeypatch.setenv("RSAE_CACHE_DIR", str(tmp_path))
    a = load_corpus("site-packages", use_cache=False)
    b = load_corpus("site-packages")  # builds the cache
    c = load_corpus("site-packages")  # reads it
    assert a.sha256 == b.sha256 == c.sha256 == corpus_sha256(c.texts)
    assert a.n_docs == len(a.texts) > 20 and a.n_chars == sum(map(len, a.texts)) > 100_000
    assert len(set(a.texts)) == len(a.texts)
    assert a.info["packages"] and all(isinstance(v, str) and v for v in a.info["packages"].values())
    assert "rsae-utils" not in a.info["packages"]
    low = "\n".join(a.texts).lower()
    assert "permission is hereby granted" not in low and "\n>>> " not in low
    small = load_corpus("site-packages", max_chars=50_000)
    assert small.n_chars <= 50_000 and small.texts[0] == a.texts[0]


def test_prose_filter():
    assert is_prose("This library makes it easy to read and write files in the format that is used by the tools.")
    assert not is_prose("x = torch.zeros(3, 4)\ny = x.sum(dim=0) + 1  # the sum of the rows is in y for the test")
    assert not is_prose(">>> import numpy as np\n>>> np.arange(10) and then the values are printed to the screen")
    assert not is_prose('THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, to the')
    assert not is_prose("Short heading")
    seen: set[str] = set()
    text = "A paragraph that is long enough to be kept by the filter and is English.\n\nSame again? " * 1
    assert clean_document(text, seen) and clean_document(text, seen) == ""  # second time: paragraphs already seen
    assert "example.com" not in clean_document("See [the docs](https://example.com/x) for the details of how it is.")


def test_dir_corpus_dedup_and_hash(tmp_path):
    c = load_corpus(f"dir:{_write_dir(tmp_path / 'c')}")
    assert c.n_docs == 40 and c.info["duplicates_dropped"] == 2
    assert c.sha256 == load_corpus(f"dir:{tmp_path / 'c'}").sha256
    (tmp_path / "c" / "doc000.txt").write_text(_doc(0) + " changed")
    assert load_corpus(f"dir:{tmp_path / 'c'}").sha256 != c.sha256


@pytest.mark.parametrize("bad", ["", "web", "hf:", "dir:", "dir:/no/such/folder", None])
def test_bad_sources(bad):
    with pytest.raises(ParameterError, match="'corpus'"):
        load_corpus(bad)


def test_empty_corpus_and_offline_hub(tmp_path):
    (tmp_path / "e").mkdir()
    with pytest.raises(ParameterError, match="empty"):
        load_corpus(f"dir:{tmp_path / 'e'}")
    (tmp_path / "e" / "blank.txt").write_text("  \n\n ")
    with pytest.raises(ParameterError, match="empty"):
        load_corpus(f"dir:{tmp_path / 'e'}")
    with pytest.raises(ParameterError, match="site-packages"):  # conftest sets HF_HUB_OFFLINE
        load_corpus("hf:togethercomputer/RedPajama-Data-1T-Sample")


def test_windows_disjoint_deterministic(tmp_path, tok):
    c = load_corpus(f"dir:{_write_dir(tmp_path / 'w', dup=False)}")
    w = tokenize_windows(c, tok, ctx=32, n_train=40, n_test=10, seed=0)
    assert w["train"].shape == (40, 32) and w["test"].shape == (10, 32) and w["train"].dtype == torch.long
    bos = boundary_token_id(tok)
    assert bos == 0 and (w["train"][:, 0] == bos).all() and (w["test"][:, 0] == bos).all()

    # split by document: no "Document <i>" header appears in both splits
    def docs_in(x):
        return {int(s.split()[1].rstrip(".")) for s in tok.batch_decode(x[:, 1:]) for s in _headers(s)}

    assert docs_in(w["train"]) and docs_in(w["test"]) and not docs_in(w["train"]) & docs_in(w["test"])

    # and no 8-token run is shared (documents are random word sequences)
    def grams(x):
        return {tuple(r[i : i + 8].tolist()) for r in x[:, 1:] for i in range(len(r) - 8)}

    assert not grams(w["train"]) & grams(w["test"])
    again = tokenize_windows(c, tok, ctx=32, n_train=40, n_test=10, seed=0)
    assert torch.equal(again["train"], w["train"]) and torch.equal(again["test"], w["test"])
    other = tokenize_windows(c, tok, ctx=32, n_train=40, n_test=10, seed=1)
    assert not torch.equal(other["train"], w["train"])
    fewer = tokenize_windows(c, tok, ctx=32, n_train=5, n_test=10, seed=0)
    assert torch.equal(fewer["test"], w["test"])  # the test split does not depend on n_train


def _headers(text: str) -> list[str]:
    import re

    return re.findall(r"Document \d+\.", text)


def test_too_few_tokens_names_parameters(tmp_path, tok):
    c = load_corpus(f"dir:{_write_dir(tmp_path / 'f', n_docs=4, dup=False)}")
    with pytest.raises(ParameterError) as err:
        tokenize_windows(c, tok, ctx=128, n_train=100, n_test=10, seed=0)
    msg = str(err.value)
    assert "n_train=100" in msg and "ctx=128" in msg and "tokens" in msg
    with pytest.raises(ParameterError, match="'ctx'"):
        tokenize_windows(c, tok, ctx=1, n_train=1, n_test=0, seed=0)


# --------------------------------------------------------------------------------------------------------------
# dir: corpora are probed before any kernel starts
# --------------------------------------------------------------------------------------------------------------
def test_binary_files_named_txt_are_refused_naming_the_file(tmp_path):
    from rsae_utils.subject.corpus import probe_corpus

    folder = _write_dir(tmp_path / "c", n_docs=4, dup=False)
    binary = folder / "image.txt"
    binary.write_bytes(bytes(range(256)) * 400)  # mostly invalid UTF-8 and NULs
    with pytest.raises(ParameterError, match=r"file .*image\.txt is not UTF-8 text"):
        probe_corpus(f"dir:{folder}")
    with pytest.raises(ParameterError, match=r"image\.txt is not UTF-8 text"):
        load_corpus(f"dir:{folder}")
    binary.write_text("Dvořák and Čapek wrote in Czech; a few accents are text, not noise. " * 20)
    probe_corpus(f"dir:{folder}")


def test_empty_corpus_folder_is_refused_before_the_kernel(tmp_path, tmp_dirs, capsys):
    from rsae_utils import nbrun
    from rsae_utils.params import resolve

    empty, blank = tmp_path / "empty", tmp_path / "blank"
    empty.mkdir()
    blank.mkdir()
    (blank / "a.txt").write_text("  \n\n")
    (blank / "b.jsonl").write_text(json.dumps({"text": ""}) + "\n")
    with pytest.raises(ParameterError, match="has no .txt or .jsonl files"):
        resolve("03_sae_training", "smoke", {"corpus": f"dir:{empty}"})
    with pytest.raises(ParameterError, match="hold no text"):
        resolve("03_sae_training", "smoke", {"corpus": f"dir:{blank}"})
    assert nbrun.main(["--profile", "smoke", "--nb", "03", "--set-string", f"corpus='dir:{empty}'"]) == 2
    assert "has no .txt or .jsonl files" in capsys.readouterr().err
    assert not (tmp_dirs[0] / "smoke" / "executed" / "03_sae_training.ipynb").exists(), "no kernel may start"
