"""anira: token-level adaptive computation in recurrent Transformers (ANIRA-E / ANIRA-O)."""

from transformers import AutoConfig, AutoModelForCausalLM

from .modeling.cache import AllocationCache
from .modeling.configuration import AniraConfig
from .modeling.model import AniraCausalLMOutput, AniraForCausalLM, AniraModel

AutoConfig.register("anira", AniraConfig, exist_ok=True)
AutoModelForCausalLM.register(AniraConfig, AniraForCausalLM, exist_ok=True)

__version__ = "0.1.0"
__all__ = ["AllocationCache", "AniraConfig", "AniraForCausalLM", "AniraModel", "AniraCausalLMOutput", "__version__"]
