"""The toy experiments: ``synthetic`` (sparse data with known features), ``superposition`` (notebook 01's demo),
``mmcs`` (notebook 02's L1-SAE sweep), ``sparsity`` (L0, L1, L1/sqrt(L2), Hoyer, frontiers)."""
