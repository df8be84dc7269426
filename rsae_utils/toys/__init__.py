"""The toy experiments: ``synthetic`` (sparse data with known features), ``superposition`` (notebook 01's demo),
``mmcs`` (notebook 02's L1-SAE sweep)."""
