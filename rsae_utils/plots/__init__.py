"""Every figure is drawn here, in one style (``style``): ``toys`` (01, 02), ``sae_metrics`` (03, paper Fig. 2),
``autointerp`` (05: ROC, AUROC, entropy, gaps; paper Fig. 1), ``browser`` (the offline latent browser)."""
