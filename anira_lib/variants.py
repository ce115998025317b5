"""A variant's names, in one place: what a trained model is called in frames and figures (ANIRA-E,
ANIRA-O, fixed-1, fixed-D, non-recurrent, ...), its run directory and dump file name, and the name a
model's own config gives it.

A variant is a name and a spec: a decider ('early', 'online', 'none') or a dict of TrainConfig
overrides applied to a study's shared settings.
"""

from __future__ import annotations

VARIANTS = {"ANIRA-E": "early", "ANIRA-O": "online"}  # the adaptive models, by decider
SHALLOW, DEEP = "fixed-1", "fixed-D"
DEPTH_BASELINES = {SHALLOW: {"decider": "none", "max_depth": 1}, DEEP: {"decider": "none"}}
# Fig. 9's baselines: the fixed-depth model and the non-recurrent one (P + D + C untied layers)
BASELINES = {"fixed-depth": {"decider": "none"}, "non-recurrent": {"decider": "none", "recurrent": False}}


def variant_overrides(spec: str | dict) -> dict:
    """A variant's TrainConfig overrides: a decider name ('early', 'online', 'none') or a dict."""
    return {"decider": spec} if isinstance(spec, str) else dict(spec)


def variant_dir(name: str, spec: str | dict) -> str:
    """The run directory (and dump suffix, allocations_<dir>.jsonl) of a variant: its decider for a
    decider spec (E and O), else its name in lower case ('fixed-D' -> 'fixed-d')."""
    return spec if isinstance(spec, str) else name.lower().replace(" ", "-")


def _known_dirs() -> dict[str, str]:
    named = {**VARIANTS, **DEPTH_BASELINES, **BASELINES}
    return {"none": "fixed-depth", **{variant_dir(name, spec): name for name, spec in named.items()}}


def name_from_dir(stem: str) -> str:
    """The variant a run directory or dump suffix belongs to ('early' -> 'ANIRA-E', 'fixed-d' ->
    'fixed-D', a decider 'none' -> 'fixed-depth'); a name it does not know stays as it is."""
    return _known_dirs().get(stem, stem)


def model_variant(config) -> str:
    """The variant a model is, by its config (an AniraConfig): ANIRA-E, ANIRA-O, non-recurrent,
    fixed-1 (one iteration) or fixed-D (every token runs its D iterations)."""
    if config.decider in VARIANTS.values():
        return {v: k for k, v in VARIANTS.items()}[config.decider]
    if not config.recurrent:
        return "non-recurrent"
    return SHALLOW if config.max_depth == 1 else DEEP
