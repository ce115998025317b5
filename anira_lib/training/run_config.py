"""`TrainConfig`: the flat set of literals one training run is (a papermill `parameters` cell,
a YAML file under `configs/`, or `key=value` overrides on the command line).

Unknown keys are errors that name the closest valid key; values are type-checked.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..modeling.configuration import AniraConfig

_MODEL = AniraConfig  # the model fields' defaults are read from the model's own config class
# The decider's loss knobs (Eq. 3-4 and the sampler of Eq. 6): a run sets them on an init_from model, and a
# run without a decider (decider: none) has no KL and no sampler, so they do nothing there.
DECIDER_LOSS_FIELDS = ("kl_beta", "prior_lambda", "gumbel_temperature")
from .sharding import SHARDINGS


@dataclass
class TrainConfig:
    # task
    task: str = "mano"
    task_args: dict = field(default_factory=dict)  # the task's knobs, e.g. {"max_ops": 8}
    # model: AniraConfig's fields with AniraConfig's defaults (one source; Table 5 names: D = max_depth,
    # P/C = prelude/coda_layers); MODEL_FIELDS below is derived from them
    decider: str = _MODEL.decider
    recurrent: bool = _MODEL.recurrent
    hidden_size: int = _MODEL.hidden_size
    intermediate_size: int = _MODEL.intermediate_size
    num_attention_heads: int = _MODEL.num_attention_heads
    prelude_layers: int = _MODEL.prelude_layers
    max_depth: int = _MODEL.max_depth
    coda_layers: int = _MODEL.coda_layers
    recurrent_layers: int = _MODEL.recurrent_layers  # R Llama layers per iteration of the block
    input_injection: bool = _MODEL.input_injection
    initial_state: str = _MODEL.initial_state
    decider_intermediate_size: int | None = _MODEL.decider_intermediate_size
    kl_beta: float = _MODEL.kl_beta
    prior_lambda: float = _MODEL.prior_lambda
    gumbel_temperature: float = _MODEL.gumbel_temperature
    initial_depth: float | None = _MODEL.initial_depth
    init_from: str | None = None  # a local ANIRA model folder (e.g. convert_llama's) to start from; its
    #   architecture replaces the model fields above, the loss knobs (kl_beta, prior_lambda, ...) still apply
    # optimisation (AdamW, linear warm-up then constant LR, gradient clipping)
    steps: int = 1000
    batch_size: int = 128  # global: split evenly across DDP ranks
    grad_accum: int = 1  # micro-batches per step: each process's share of batch_size in this many
    #   forward/backward passes (same gradient as one pass, less activation memory)
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    # machinery
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    dtype: str = "auto"  # "auto" (bf16 autocast on GPU, fp32 on CPU) | "float32" | "bfloat16"
    sharding: str = "ddp"  # under torchrun: "ddp" (a full copy per process) or "fsdp" (FSDP2 fully_shard)
    compile: bool = False  # torch.compile the training step (CPU too: ~2x the steps/s at the demo size)
    out_dir: str = "runs/mano"
    log_every: int = 25
    checkpoint_every: int = 250
    keep_checkpoints: bool = False  # also keep a model snapshot per checkpoint (training dynamics)
    tensorboard: bool = False
    progress: bool = True


    def __post_init__(self):
        self.validate()

    def validate(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str) and "float" in str(f.type):
                try:  # YAML 1.1 reads 1e-4 (no dot) as a string
                    setattr(self, f.name, float(value))
                except ValueError:
                    pass
            _check_type(f.name, getattr(self, f.name), f.type)
        for f in dataclasses.fields(self):  # inf / nan pass the type check but no run can use them
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name} must be a finite number, got {value}; give a finite value.")
        if not str(self.out_dir).strip():
            raise ValueError("out_dir is empty; name the run's folder (e.g. out_dir=runs/mano): an empty one would "
                             "be the current directory.")
        positive = ("steps", "batch_size", "grad_accum", "log_every", "checkpoint_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}.")
        if self.warmup_steps < 0 or self.grad_clip < 0 or self.weight_decay < 0:
            raise ValueError("warmup_steps, grad_clip and weight_decay must be >= 0.")
        if self.sharding not in SHARDINGS:
            raise ValueError(f"sharding={self.sharding!r} is unknown; use 'ddp' (a full model per process) or "
                             "'fsdp' (FSDP2: parameters, gradients and optimizer state sharded across processes).")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"dtype={self.dtype!r} is unknown; use 'auto', 'float32' or 'bfloat16'.")
        try:  # model knobs: AniraConfig validates them and names the bad field
            self.model_config()
        except Exception as err:  # transformers wraps a validator's error in a two-line class error
            inner = err.__cause__
            if isinstance(inner, ValueError) and type(err).__name__ == "StrictDataclassClassValidationError":
                raise ValueError(str(inner)) from None
            raise

    def model_config(self, vocab_size: int = 64, **extra) -> AniraConfig:
        kw = {k: getattr(self, k) for k in self.MODEL_FIELDS}
        return AniraConfig(vocab_size=vocab_size, **kw, **extra)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def defaults(cls) -> dict:
        """Every key's default value."""
        return cls().to_dict()

    # -- loading -----------------------------------------------------------------------------
    @classmethod
    def check_keys(cls, values: dict, source: str = "config") -> None:
        names = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(names)}"
                raise ValueError(f"unknown key {key!r} in {source}; {hint}")

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "TrainConfig":
        cls.check_keys(values, source)
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | dict | None = None) -> "TrainConfig":
        """Read a YAML/JSON file (optional), then apply `key=value` overrides (values parsed as YAML).
        Errors name where the bad key or value came from: the file, or the command-line overrides."""
        values: dict = {}
        if path is not None:
            loaded = read_mapping(path, "config file", "the shipped ones are in configs/")
            cls.check_keys(loaded, str(path))
            values.update(loaded)
        given = dict(overrides) if isinstance(overrides, dict) else parse_overrides(overrides or [])
        cls.check_keys(given, "the command-line overrides")
        return cls.from_dict({**values, **given}, source=str(path) if path else "the command-line overrides")


def read_mapping(path: str | Path, what: str = "file", hint: str = "") -> dict:
    """The key: value mapping of a YAML (or JSON) file. A missing, empty or malformed file, one that is
    not a mapping, or one that gives a key twice is a one-line error naming the file (and the line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found" + (f"; {hint}." if hint else "."))
    try:
        loaded = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = str(getattr(err, "problem", None) or err).splitlines()[0]
        raise ValueError(f"{path} is not valid YAML{at}: {problem}; fix the file (key: value per line).") from None
    if loaded is None:
        raise ValueError(f"{path} is empty; write its settings as key: value lines"
                         + (f" ({hint})." if hint else "."))
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} must hold a mapping of key: value, got {type(loaded).__name__}.")
    return loaded


def parse_overrides(items) -> dict:
    """`key=value` strings -> {key: value}, values parsed as YAML (safe: no tags that build objects)."""
    given = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value (e.g. steps=500).")
        key, raw = item.split("=", 1)
        try:
            given[key.strip()] = yaml.load(raw, Loader=_UniqueKeyLoader)
        except yaml.YAMLError as err:
            problem = str(getattr(err, "problem", None) or err).splitlines()[0]
            raise ValueError(f"override {item!r}: the value is not plain YAML ({problem}).") from None
    return given


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (PyYAML keeps the
    last one silently, so a config's earlier line would be ignored)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (the later value would silently win)", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _check_type(name, value, annotation):
    if isinstance(annotation, str):
        annotation = eval(annotation, {"dict": dict, "int": int, "float": float, "str": str, "bool": bool})
    args = typing.get_args(annotation)
    options = args if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union \
        else (annotation,)
    for t in options:
        if t is type(None) and value is None:
            return
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return
        if t not in (int, float, type(None)) and isinstance(value, t):
            return
    want = " or ".join(getattr(t, "__name__", str(t)) for t in options)
    raise TypeError(f"{name} must be {want}, got {value!r} ({type(value).__name__}).")


# The run config's fields that configure the model: those AniraConfig also declares.
TrainConfig.MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig)
                                 if f.name in AniraConfig.__annotations__)
