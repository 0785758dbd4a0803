"""The text tower of an OpenCLIP model (the ``open_clip_torch`` package), as TA-TiTok and MaskGen use it.

Official: ``create_clip_model`` in ``utils/train_utils.py`` (bytedance/1d-tokenizer) builds
``open_clip.create_model_and_transforms("ViT-L-14-336", pretrained="openai")`` and drops the image
tower; TA-TiTok's decoder reads the text transformer's output after ``ln_final`` (``README_MaskGen.md``,
"Get Started - TA-TiTok"), MaskGen the penultimate block's output and the pooled projection
(``open_clip_text_encoding``, ``modeling/maskgen.py`` L61-79). One pass here gives all three.

Needs the optional extra ``pip install "tokenkit[text]"``.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from tokenkit.contracts import TextEmbeddings, check_prompts
from tokenkit.errors import ConfigError, WeightsError
from tokenkit.kinds import TextEncoder
from tokenkit.registry import register
from tokenkit.sources import WeightSource
from tokenkit.specs import Part
from tokenkit.validation import check_positive_ints
from tokenkit.weights.hub import HubOptions, resolve_weight_source
from tokenkit.weights.io import load_state_dict

OPENAI_L14_336 = "timm/vit_large_patch14_clip_336.openai"
"""The Hub repo of OpenCLIP's ``ViT-L-14-336`` / ``openai`` weights (``open_clip.get_pretrained_cfg``)."""

_HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
"""Weight files of an OpenCLIP Hub repo, preferred first (as ``open_clip.pretrained.download_pretrained_from_hf``)."""

_TEXT_KEYS = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")
"""State-dict keys of the text tower in a CLIP checkpoint (the rest is the image tower and ``logit_scale``)."""


OPENAI_VIT_L14_336 = Part("openclip", model="ViT-L-14-336", weights="openai", quick_gelu=True)
"""The text encoder of TA-TiTok and MaskGen (``create_clip_model``, ``utils/train_utils.py`` L91-98 of
bytedance/1d-tokenizer): OpenCLIP ViT-L/14 at 336 px with the OpenAI weights (QuickGELU), text tower only."""

TINY = Part("openclip", width=16, heads=2, layers=2, embed_dim=16, context_length=16)
"""A tiny text tower with random (seeded) weights, for tests, tiny models and the offline recipes."""


def text_encoder_part(value: Part | bool | None) -> Part | None:
    """A builder's ``text_encoder`` knob as a part: a [`Part`][tokenkit.specs.Part] as given, ``True`` the
    official [`OPENAI_VIT_L14_336`][tokenkit.text_encoders.openclip.OPENAI_VIT_L14_336], ``False`` / ``None``
    none.

    Raises:
        ConfigError: Anything else.

    Examples:
        >>> text_encoder_part(True).config["model"], text_encoder_part(False)
        ('ViT-L-14-336', None)
    """
    if value is None or isinstance(value, bool):
        return OPENAI_VIT_L14_336 if value else None
    if not isinstance(value, Part):
        raise ConfigError(f"text_encoder must be a text encoder Part (e.g. tk.Part('openclip', ...)), True (OpenCLIP "
                          f"ViT-L-14-336, OpenAI weights) or False (none), got {value!r}")
    return value


def import_open_clip() -> Any:
    """The ``open_clip`` module, or a clear error naming the extra that installs it."""
    try:
        import open_clip
    except ImportError as err:
        raise ConfigError("the 'openclip' text encoder needs the open_clip_torch package: "
                          "pip install \"tokenkit[text]\"") from err
    return open_clip


@dataclasses.dataclass(frozen=True)
class OpenCLIPTextConfig:
    """Options of the ``openclip`` text encoder."""

    model: str = "ViT-L-14-336"
    """OpenCLIP model name: the architecture of the text tower (``open_clip.list_models()``)."""
    weights: str | None = None
    """``None``: random weights (drawn from ``seed``, so that two builds agree); an OpenCLIP pretrained tag
    (``"openai"``), fetched from the Hub or its cache; or a local CLIP checkpoint file (``.bin`` / ``.pt`` /
    ``.safetensors``)."""
    quick_gelu: bool | None = None
    """QuickGELU activations (the OpenAI weights use them); ``None``: as the pretrained tag says, else off."""
    width: int | None = None
    """Override the model's text width ``W`` (tiny test towers)."""
    heads: int | None = None
    """Override the attention heads."""
    layers: int | None = None
    """Override the number of blocks (at least 2: MaskGen reads the penultimate one)."""
    embed_dim: int | None = None
    """Override the pooled width ``E``."""
    context_length: int | None = None
    """Override the tokens per prompt ``L`` (77 for CLIP)."""
    seed: int = 0
    """Seed of the random weights (``weights=None``)."""

    def __post_init__(self) -> None:
        check_positive_ints(self, optional=("width", "heads", "layers", "embed_dim", "context_length"))
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model must be an OpenCLIP model name, got {self.model!r}")
        if self.weights is not None and (not isinstance(self.weights, str) or not self.weights):
            raise ValueError(f"weights must be None, an OpenCLIP pretrained tag or a file path, got {self.weights!r}")
        if self.layers is not None and self.layers < 2:
            raise ValueError(f"layers must be >= 2 (the penultimate block is read), got {self.layers}")

    @property
    def text_width(self) -> int | None:
        """Width ``W`` of ``tokens`` / ``hidden`` (``None`` when open_clip is not installed to say)."""
        return self.width or _text_cfg(self.model).get("width")

    @property
    def text_length(self) -> int | None:
        """Tokens per prompt ``L`` (``None`` when open_clip is not installed to say)."""
        cfg = _text_cfg(self.model)
        return self.context_length or cfg.get("context_length", 77 if cfg else None)

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> OpenCLIPTextConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        heads = rng.choice([1, 2])
        return cls(width=8 * heads, heads=heads, layers=rng.randint(2, 3), embed_dim=rng.choice([4, 8]),
                   context_length=rng.randint(8, 16), seed=rng.randint(0, 9))


def _text_cfg(model: str) -> dict:
    """The ``text_cfg`` of an OpenCLIP model config; empty when open_clip is missing or the name unknown."""
    try:
        import open_clip
    except ImportError:
        return {}
    return dict((open_clip.get_model_config(model) or {}).get("text_cfg", {}))


def _state_dict_of(path: Path) -> dict[str, torch.Tensor]:
    state = load_state_dict(path)
    for prefix in ("text.", "module."):  # CustomTextCLIP and DDP wrappers
        if any(k.startswith(prefix + "token_embedding.") for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return {k: v for k, v in state.items() if k.startswith(_TEXT_KEYS)}


@register("text_encoder", "openclip")
class OpenCLIPText(TextEncoder):
    """OpenCLIP text tower: prompts -> [`TextEmbeddings`][tokenkit.contracts.TextEmbeddings]
    ``tokens (B, L, W)``, ``hidden (B, L, W)``, ``pooled (B, E)``.

    Frozen, in eval mode, weights external (see [`TextEncoder`][tokenkit.kinds.TextEncoder]).

    Args:
        config: [`OpenCLIPTextConfig`][tokenkit.text_encoders.openclip.OpenCLIPTextConfig].

    Raises:
        ConfigError: open_clip_torch is missing, or an unknown model name or pretrained tag.
        WeightsError: The weights cannot be fetched (offline: naming the file, its address and where to put
            it) or do not fit.
    """

    Config = OpenCLIPTextConfig

    def __init__(self, config: OpenCLIPTextConfig) -> None:
        super().__init__()
        open_clip = import_open_clip()
        from open_clip.model import CLIPTextCfg, _build_text_tower

        self.config = config
        model_cfg = open_clip.get_model_config(config.model)
        if model_cfg is None:
            raise ConfigError(f"unknown OpenCLIP model {config.model!r}; see open_clip.list_models()")
        is_file = config.weights is not None and Path(config.weights).expanduser().is_file()
        pretrained_cfg = {}
        if config.weights is not None and not is_file:
            pretrained_cfg = open_clip.get_pretrained_cfg(config.model, config.weights)
            if not pretrained_cfg:
                tags = ", ".join(open_clip.list_pretrained_tags_by_model(config.model)) or "none"
                raise ConfigError(f"text encoder 'openclip': {config.weights!r} is neither a file nor a pretrained "
                                  f"tag of {config.model!r} (its tags: {tags})")
        overrides = {k: getattr(config, k) for k in ("width", "heads", "layers", "context_length")
                     if getattr(config, k) is not None}
        text_cfg = CLIPTextCfg(**{**model_cfg["text_cfg"], **overrides})
        embed_dim = config.embed_dim or model_cfg["embed_dim"]
        quick_gelu = config.quick_gelu if config.quick_gelu is not None else bool(pretrained_cfg.get("quick_gelu"))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.tower = _build_text_tower(embed_dim, text_cfg, quick_gelu=quick_gelu)
        self.tower.requires_grad_(False)
        self.width = text_cfg.width
        self.context_length = text_cfg.context_length
        self.pooled_dim = embed_dim
        self._tokenizer = open_clip.get_tokenizer(config.model, context_length=text_cfg.context_length)
        if config.weights is not None and torch.empty(0).device.type != "meta":
            self._load(Path(config.weights).expanduser() if is_file else self._download(pretrained_cfg, quick_gelu))
        self.eval()

    def _download(self, pretrained_cfg: dict, quick_gelu: bool) -> Path:
        repo = str(pretrained_cfg.get("hf_hub", "")).strip("/")
        if not repo:
            raise WeightsError(f"text encoder 'openclip' ({self.config.model}, {self.config.weights!r}): OpenCLIP "
                               "publishes these weights outside the Hugging Face Hub; download them and pass "
                               "weights='/path/to/file'")
        what = f"text encoder 'openclip' ({self.config.model}, weights {self.config.weights!r})"
        try:
            return resolve_weight_source(WeightSource(repo, _HUB_FILES[0]), HubOptions(), what=what).weights
        except WeightsError as first:
            try:
                return resolve_weight_source(WeightSource(repo, _HUB_FILES[1]), HubOptions(), what=what).weights
            except WeightsError:
                message = str(first).replace("(pretrained='/path/to/", "(the text encoder's weights='/path/to/")
                raise WeightsError(
                    f"{message}\nA model holding this text encoder takes it as text_encoder=tk.Part('openclip', "
                    f"model={self.config.model!r}, weights=PATH, quick_gelu={quick_gelu}); "
                    "weights=None gives random text weights (tests, training from scratch)") from None

    def _load(self, path: Path) -> None:
        state = _state_dict_of(path)
        expected = {k: v.shape for k, v in self.tower.named_parameters()}
        missing = sorted(set(expected) - set(state))
        misshaped = sorted(k for k in set(expected) & set(state) if state[k].shape != expected[k])
        if missing or misshaped:
            raise WeightsError(f"text encoder 'openclip' ({self.config.model}): {path} does not fit its text tower"
                               f" (missing: {', '.join(missing[:5]) or 'none'}; mis-shaped: "
                               f"{', '.join(misshaped[:5]) or 'none'})")
        self.tower.load_state_dict({k: state[k] for k in expected}, strict=False)

    def tokenize(self, prompts: str | Sequence[str]) -> torch.Tensor:
        """Prompts -> CLIP BPE ids ``(B, L)`` int64 (truncated to ``L``, end-of-text last).

        Raises:
            ContractError: Prompts that are not strings.
        """
        return self._tokenizer(check_prompts(prompts))

    @torch.no_grad()
    def forward(self, prompts: str | Sequence[str]) -> TextEmbeddings:
        """Embed prompts.

        Args:
            prompts: One string or a list of ``B`` strings.

        Returns:
            [`TextEmbeddings`][tokenkit.contracts.TextEmbeddings]: ``tokens`` and ``hidden`` ``(B, L, W)``,
            ``pooled`` ``(B, E)``, in the tower's dtype.

        Raises:
            ContractError: Prompts that are not strings (or none).
        """
        tower = self.tower
        weight = tower.token_embedding.weight
        ids = self.tokenize(prompts).to(weight.device)
        x = tower.token_embedding(ids) + tower.positional_embedding.to(weight.dtype)
        blocks = tower.transformer.resblocks
        mask = tower.attn_mask.to(weight.dtype) if tower.attn_mask is not None else None
        for block in blocks[:-1]:
            x = block(x, attn_mask=mask)
        hidden = x
        tokens = tower.ln_final(blocks[-1](x, attn_mask=mask))
        pooled = tokens[torch.arange(ids.shape[0], device=ids.device), ids.argmax(dim=-1)]
        projection = tower.text_projection
        if projection is not None:
            pooled = projection(pooled) if isinstance(projection, torch.nn.Linear) else pooled @ projection
        return TextEmbeddings(tokens, hidden, pooled)

    def extra_repr(self) -> str:
        weights = self.config.weights or f"random (seed {self.config.seed})"
        return f"model={self.config.model!r}, weights={os.fspath(weights)!r}"
