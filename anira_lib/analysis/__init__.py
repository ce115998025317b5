"""Analyses of evaluated runs: depth necessity, the paper's claims as verdicts, proxies and parser, regressions, dynamics, τ sweeps."""
