"""Auto-interpretability of SAE latents, after EleutherAI's delphi (Paulo et al. 2024) as used by Heap et al.

The pipeline, one module per stage (latents -> examples -> explanations -> scores -> tables):

* ``examples``  latent activations (chunk-wise ``sae.encode``, kept sparse) -> 32-token windows -> per-latent
  explainer windows, quantile-binned positives and non-activating negatives;
* ``prompts``   explainer / detection / fuzzing messages and the fuzzing marks;
* ``llm/``      LLM backends behind one protocol (OpenAI-compatible endpoint, local model, local server);
* ``scorers``   explanation and detection / fuzzing scores through a backend, one tidy row per window;
* ``baseline``  the token-identity baseline (no LLM), same rows with backend ``token-baseline``;
* ``stats``     AUROC, ROC points, balanced accuracy, bootstrap ROC bands, the two-stage bootstrap over latents
  (token entropy, single-token and positional measures: :mod:`rsae_utils.tokenstats`);
* ``positional``, ``positional_stats``  positional latents: eta^2, mutual information, lag autocorrelation;
* ``token_scorers`` scorers that need no LLM: intruder, hard negatives, active-token fuzzing, single-token explainer;
* ``tables``    per-latent statistics and scores, unparsable answers;
* ``pipeline``  ``run_autointerp``: all of the above over every SAE, resumable, written as tidy tables;
* ``synthetic`` latents with known answers (tests, sanity checks).

Its figures and the latent browser are drawn in :mod:`rsae_utils.plots`.
"""
