"""Notebook 09: ``run`` (caches, one snapshot run per variant, layer and seed, the measures), ``measures`` (what is
measured on each snapshot), ``curves`` (settled or not, gap trends, limits), ``answer`` (the answer's sentences)."""
