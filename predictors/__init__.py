"""Zero-shot performance predictors (nas.predictors)."""
