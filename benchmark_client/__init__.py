"""ParaS2SBench client: manifests, benchmark splits, systems under test, runs and reports."""
