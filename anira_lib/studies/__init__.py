"""Studies that train and evaluate several runs in one call: comparisons, findings, calibration, extrapolation, natural language."""
