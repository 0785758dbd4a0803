"""tokenkit: pluggable image-tokenizer building blocks.

The names below are imported on first use (``import tokenkit`` itself imports nothing heavy, so
``tokenkit --help`` is fast); the built-in parts and models register themselves the first time a
registry is read.

Examples:
    >>> import tokenkit as tk
    >>> tk.list_models("titok-b*")
    ['titok-b64', 'titok-b128-512', 'titok-bl64-vae', 'titok-bl64-vq8k', 'titok-bl128-vae', 'titok-bl128-vq8k']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from tokenkit.version import __version__

if TYPE_CHECKING:  # what the names are, for type checkers and the API docs; loaded on first use below
    from tokenkit import (  # noqa: F401  (attributes: tk.metrics, tk.data, ...)
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
    from tokenkit.kinds import Backbone, Decoder, Discriminator, Encoder, FeatureExtractor, Generator, Loss, Quantizer
    from tokenkit.models import Tokenizer, titok  # noqa: F401
    from tokenkit.options import Option, knobs, part_options
    from tokenkit.pipelines import generate_images
    from tokenkit.pretrained import from_pretrained
    from tokenkit.registry import (
        KINDS,
        list_models,
        list_parts,
        register,
        register_model,
        unregister,
        unregister_model,
    )
    from tokenkit.sources import WeightSource
    from tokenkit.specs import GeneratorSpec, Part, TokenizerSpec
    from tokenkit.weights import load_weights, push_to_hub, save_pretrained

__all__ = [
    "KINDS", "ConfigError", "GeneratorSpec", "ContractError", "Part", "QuantizerOutput", "RegistryError", "Tokenizer",
    "TokenizerOutput", "TokenizerSpec", "TokenkitError", "build", "build_part", "list_models", "list_parts",
    "register", "register_model", "spec", "unregister", "__version__", "WeightsError", "from_pretrained",
    "load_weights", "save_pretrained", "unregister_model", "generate_images", "ablate", "load_images", "save_images",
    "evaluate_reconstruction", "evaluate_generation", "rate_distortion", "push_to_hub",
    "Backbone", "Encoder", "Quantizer", "Decoder", "Generator", "Loss", "Discriminator", "FeatureExtractor",
    "Option", "knobs", "part_options", "WeightSource",
]

_NAMES = {
    "tokenkit.ablation": ["ablate"],
    "tokenkit.api": ["build", "spec"],
    "tokenkit.contracts": ["QuantizerOutput", "TokenizerOutput"],
    "tokenkit.errors": ["ConfigError", "ContractError", "RegistryError", "TokenkitError", "WeightsError"],
    "tokenkit.evaluation.rate_distortion": ["rate_distortion"],
    "tokenkit.evaluation.runner": ["evaluate_generation", "evaluate_reconstruction"],
    "tokenkit.factory": ["build_part"],
    "tokenkit.images": ["load_images", "save_images"],
    "tokenkit.kinds": ["Backbone", "Decoder", "Discriminator", "Encoder", "FeatureExtractor", "Generator", "Loss",
                       "Quantizer"],
    "tokenkit.models": ["Tokenizer", "titok"],
    "tokenkit.options": ["Option", "knobs", "part_options"],
    "tokenkit.pipelines": ["generate_images"],
    "tokenkit.pretrained": ["from_pretrained"],
    "tokenkit.registry": ["KINDS", "list_models", "list_parts", "register", "register_model", "unregister",
                          "unregister_model"],
    "tokenkit.sources": ["WeightSource"],
    "tokenkit.specs": ["GeneratorSpec", "Part", "TokenizerSpec"],
    "tokenkit.weights": ["load_weights", "push_to_hub", "save_pretrained"],
}
_SOURCE = {name: module for module, names in _NAMES.items() for name in names}
"""The module each public name is imported from on first use."""

_LIGHT = ("tokenkit.errors",)
"""Modules whose names need no registered parts (the errors stay cheap to import, e.g. for the CLI)."""

_SUBMODULES = ("backbones", "data", "datasets", "decoders", "discriminators", "encoders", "evaluation", "generators",
               "losses", "metrics", "quantizers", "testing", "text_encoders")
"""Subpackages reachable as attributes (``tk.metrics.psnr``) without importing them first."""


def __getattr__(name: str):
    if name in _SOURCE:
        value = getattr(importlib.import_module(_SOURCE[name]), name)
        if _SOURCE[name] not in _LIGHT:  # e.g. tk.Part checks option names against the registered parts
            importlib.import_module("tokenkit.registry").load_builtin()
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCE) | set(_SUBMODULES))
