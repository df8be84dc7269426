"""PROFILE=gpu: the offline model at the paper's SAE width, its resource estimate, and the refusal of a run that
cannot fit the machine; then notebook 03 under ``gpu`` at smoke size on the CPU (only sizes and device overridden)."""

from __future__ import annotations

import pytest

from rsae_utils.errors import ParameterError
from rsae_utils.params import budget, resolve
from rsae_utils.params.core import INHERIT, NOTEBOOKS, PROFILES

SMOKE_03 = {
    "model": "tiny-random",
    "layers": [0, 2],
    "corpus": "site-packages",
    "max_corpus_chars": 400_000,
    "ctx": 32,
    "n_train_windows": 48,
    "n_test_windows": 12,
    "n_spliced_windows": 6,
    "harvest_batch": 8,
    "expansion": 4,
    "k": 8,
    "train_tokens": 4096,
    "batch_size": 256,
    "lr": 3e-3,
    "device": "cpu",
    "torch_threads": 1,
}


def test_gpu_profile_values_and_inheritance():
    assert "gpu" in PROFILES
    cfg = resolve("03_sae_training", "gpu")
    assert cfg.model == "smollm2-135m" and len(cfg.variants) == 5 and cfg.layers == [0, 2, 4, 6, 8, 10, 12, 14]
    assert (cfg.expansion, cfg.k, cfg.device, cfg.train_from) == (64, 32, "cuda", "stream")
    assert cfg.corpus == "site-packages+docstrings" and cfg.train_tokens >= 2_000_000
    nb04 = resolve("04_autointerp", "gpu")
    assert nb04.n_latents == 100 and set(nb04.llm_layers) <= set(cfg.layers)
    # a parameter without a gpu value takes the default profile's
    for name, spec in NOTEBOOKS.items():
        for p in spec.params:
            if p.gpu is INHERIT:
                assert p.value("gpu") == p.default, (name, p.name)


def test_large_profiles_print_an_estimate_and_refuse_what_cannot_fit(monkeypatch, tmp_dirs, capsys):
    resolve("03_sae_training", "gpu")
    line = capsys.readouterr().out
    assert "[budget] 03_sae_training (gpu)" in line and "GB disk" in line and "host memory" in line
    assert "GPU memory" in line and " h on cuda" in line
    resolve("03_sae_training", "smoke")
    assert "[budget]" not in capsys.readouterr().out  # small profiles stay quiet

    monkeypatch.setattr(budget, "host_memory_bytes", lambda: 2 * 10**9)
    with pytest.raises(ParameterError, match="host memory"):
        resolve("03_sae_training", "paper")
    monkeypatch.setattr(budget, "host_memory_bytes", lambda: 10**12)
    monkeypatch.setattr(budget, "gpu_memory_bytes", lambda device: 8 * 10**9 if device == "cuda" else None)
    with pytest.raises(ParameterError, match="GPU memory"):
        resolve("03_sae_training", "gpu")
    assert resolve("03_sae_training", "gpu", {"layers": [0], "expansion": 8}).expansion == 8
    monkeypatch.setattr(budget, "free_disk_bytes", lambda path: 10**8)  # 0.1 GB free
    with pytest.raises(ParameterError, match=r"but 100\.0 MB is free"):
        resolve("03_sae_training", "gpu", {"layers": [0], "expansion": 8})


@pytest.mark.slow
def test_gpu_profile_runs_notebook_03_at_smoke_size_on_cpu(tmp_dirs, capsys):
    from rsae_utils.nbrun import run_notebook
    from rsae_utils.sae.pipeline import trained_runs

    build, figures = tmp_dirs
    run_notebook("03", "gpu", SMOKE_03, progress=False)
    assert "[budget] 03_sae_training (gpu)" in capsys.readouterr().out
    runs = trained_runs("gpu")
    assert len(runs) == 5 * 2 and set(runs.layer) == {0, 2}
    assert (figures / "gpu" / "fig2_sae_metrics.png").stat().st_size > 0


def test_gpu_check_script_is_valid_bash_and_writes_under_figures_gpu():
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "--profile gpu" in text and 'OUT="${RSAE_FIGURES_DIR:-figures}/gpu"' in text
    assert all(f"benchmarks/{b}" in text for b in ("bench_topk_train.py", "bench_cache_train.py", "bench_matching.py"))
