"""Auto-interpretability of SAE latents, after EleutherAI's delphi (Paulo et al. 2024) as used by Heap et al.

The pipeline, one module per stage:

* ``examples``  latent activations (chunk-wise ``sae.encode``, kept sparse) -> 32-token windows -> per-latent
  explainer windows, quantile-binned positives and non-activating negatives;
* ``prompts``   explainer / detection / fuzzing messages and the fuzzing marks;
* ``clients``   LLM backends behind one interface (OpenAI-compatible HTTP endpoint, local transformers model);
* ``scorers``   explanation and detection / fuzzing scores through a backend, one tidy row per window;
* ``baseline``  the token-identity baseline (no LLM), same rows with backend ``token-baseline``;
* ``stats``     AUROC, ROC points, balanced accuracy, bootstrap ROC bands, token entropy, single-token and
  positional measures;
* ``pipeline``  ``run_autointerp``: all of the above over every SAE, resumable, written as tidy tables;
* ``figures``   tables and figures of notebook 05; ``browser``: the offline HTML latent browser;
* ``synthetic`` latents with known answers (tests, sanity checks).
"""
