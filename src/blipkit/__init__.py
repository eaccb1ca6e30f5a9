"""blipkit: BLIP vision-language models made practical."""

from blipkit.blip import Blip, load
from blipkit.errors import BlipkitError
from blipkit.runtime.encoding import ImageFeatures
from blipkit.tasks.generation import GenerationSettings

__version__ = "0.1.0"
__all__ = ["Blip", "BlipkitError", "GenerationSettings", "ImageFeatures", "__version__", "load"]
