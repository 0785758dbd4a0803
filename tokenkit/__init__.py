"""tokenkit: pluggable image-tokenizer building blocks.

Examples:
    >>> import tokenkit as tk
    >>> tk.list_models("titok-b*")
    ['titok-b64', 'titok-bl64-vae', 'titok-bl64-vq8k', 'titok-bl128-vae', 'titok-bl128-vq8k']
"""

from tokenkit import (  # noqa: F401  (registers the parts)
    backbones,
    data,
    datasets,
    decoders,
    discriminators,
    encoders,
    evaluation,
    generators,
    losses,
    metrics,
    quantizers,
    testing,
)
from tokenkit.ablation import ablate
from tokenkit.api import build, spec
from tokenkit.contracts import QuantizerOutput, TokenizerOutput
from tokenkit.errors import ConfigError, ContractError, RegistryError, TokenkitError, WeightsError
from tokenkit.evaluation.rate_distortion import rate_distortion
from tokenkit.evaluation.runner import evaluate_generation, evaluate_reconstruction
from tokenkit.factory import build_part
from tokenkit.images import load_images, save_images
from tokenkit.options import Option, knobs, part_options
from tokenkit.kinds import Backbone, Decoder, Discriminator, Encoder, FeatureExtractor, Generator, Loss, Quantizer
from tokenkit.models import Tokenizer, titok  # noqa: F401  (registers the models)
from tokenkit.pipelines import generate_images
from tokenkit.pretrained import from_pretrained
from tokenkit.registry import KINDS, list_models, list_parts, register, register_model, unregister, unregister_model
from tokenkit.specs import GeneratorSpec, Part, TokenizerSpec
from tokenkit.version import __version__
from tokenkit.weights import load_weights, push_to_hub, save_pretrained

__all__ = [
    "KINDS", "ConfigError", "GeneratorSpec", "ContractError", "Part", "QuantizerOutput", "RegistryError", "Tokenizer",
    "TokenizerOutput", "TokenizerSpec", "TokenkitError", "build", "build_part", "list_models", "list_parts",
    "register", "register_model", "spec", "unregister", "__version__", "WeightsError", "from_pretrained",
    "load_weights", "save_pretrained", "unregister_model", "generate_images", "ablate", "load_images", "save_images",
    "evaluate_reconstruction", "evaluate_generation", "rate_distortion", "push_to_hub",
    "Backbone", "Encoder", "Quantizer", "Decoder", "Generator", "Loss", "Discriminator", "FeatureExtractor",
    "Option", "knobs", "part_options",
]
