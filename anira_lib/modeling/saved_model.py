"""Opening a saved model folder (`save_pretrained`'s `config.json` + `model.safetensors`) whatever state
it is in: a missing config, weights only in a pickle file, or a truncated file each raise one line that
names the folder and what to do, never transformers' or torch's own multi-line text.

Weights are read from safetensors only. A `pytorch_model.bin` is a pickle, and unpickling can run code;
torch's refusal of a planted one advises turning its weights-only guard off, which is exactly what must
not be done with a file of unknown origin, so such folders are refused before torch sees them.
"""

from __future__ import annotations

from pathlib import Path

from ..files import quiet_transformers_bars
from .model import AniraForCausalLM

WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


class SavedModelError(ValueError):
    """A model folder that cannot be opened; the message names the folder and the fix."""


def check_saved_model(path: str | Path, what: str, fix: str, error: type[Exception] = SavedModelError) -> None:
    """Raise (one line: `what`, the problem, `fix`) unless `path` has a config and safetensors weights.
    A missing config.json raises FileNotFoundError; weights missing or only in a pickle raise `error`."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{what} is not a saved model (no config.json); {fix}.")
    if not any((path / name).is_file() for name in WEIGHTS):
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl"))
        found = (f"only {', '.join(pickles)}, pickle weights, which can run code when read and are not opened"
                 if pickles else "no weights")
        raise error(f"{what} holds {found} (no model.safetensors); {fix}.")


def load_saved_model(path: str | Path, what: str, fix: str, error: type[Exception] = SavedModelError
                     ) -> AniraForCausalLM:
    """The AniraForCausalLM saved in `path`, or one line naming `what` was wrong and `fix`.
    what: how the message names the folder (e.g. "snapshot /runs/x/checkpoints/step_0000200");
    error: the exception class for a damaged or incomplete folder."""
    check_saved_model(path, what, fix, error)
    try:
        with quiet_transformers_bars():  # a frozen "Loading weights 0%" bar otherwise
            return AniraForCausalLM.from_pretrained(path, use_safetensors=True)
    except Exception as err:  # truncated safetensors ("invalid header length"), a broken config.json
        lines = str(err).strip().splitlines()
        reason = lines[0][:200] if lines else type(err).__name__
        raise error(f"{what} cannot be loaded as a model ({reason}); {fix}.") from err


__all__ = ["SavedModelError", "check_saved_model", "load_saved_model"]
