"""The engine's built-in BLIP model, registered with transformers' Auto classes."""

from transformers import AutoConfig, AutoModel

from assistant.vision.models.builtin.configuration import BuiltinBlipConfig
from assistant.vision.models.builtin.modeling import BuiltinBlipModel

AutoConfig.register(BuiltinBlipConfig.model_type, BuiltinBlipConfig, exist_ok=True)
AutoModel.register(BuiltinBlipConfig, BuiltinBlipModel, exist_ok=True)

__all__ = ["BuiltinBlipConfig", "BuiltinBlipModel"]
