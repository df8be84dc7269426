"""Notebook 05: pooled ROC tables with bootstrap bands, AUROC and token entropy against layer (``tables``)."""
