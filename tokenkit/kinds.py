"""One base class per part kind, declaring the capabilities the rest of tokenkit reads.

A part subclasses the base of its kind and overrides the class attributes that differ
(or sets them per instance in ``__init__`` when they depend on the config); code that
uses parts reads these attributes directly instead of probing with ``getattr`` /
``hasattr``. [`register`][tokenkit.registry.register] refuses a class that does not
derive from the base of its kind.

Examples:
    >>> import dataclasses, torch, tokenkit as tk
    >>> @dataclasses.dataclass(frozen=True)
    ... class SignConfig:
    ...     dim: int = 4
    >>> class Sign(tk.Quantizer):
    ...     Config = SignConfig
    ...     codebook_size = None            # continuous codes: no ids
    ...     def __init__(self, config):
    ...         super().__init__()
    >>> Sign(SignConfig()).num_codebooks, Sign.supports_prefix
    (1, False)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from tokenkit.contracts import LossInputs, LossOutput, TextEmbeddings


class Backbone(nn.Module):
    """Kind ``backbone``: a transformer stack, tokens ``(B, L, W)`` -> tokens ``(B, L, W)``.

    Examples:
        >>> import tokenkit as tk
        >>> vit = tk.build_part("backbone", tk.Part("vit", width=16, depth=1, heads=2))
        >>> isinstance(vit, tk.Backbone), vit.has_fused_inference
        (True, True)
    """

    text_conditioned: ClassVar[bool] = False
    """``forward(x, context, pooled)`` with a text sequence ``context (B, L, W)`` and a pooled condition
    ``pooled (B, W)`` (MM-DiT, MaskGen), instead of ``forward(x)``."""
    has_fused_inference: ClassVar[bool] = False
    """The stack has a ``fused_inference`` switch (oneDNN-fused linear maps at inference); decoders
    that own the stack forward their own switch to it."""


class PatchGridTables:
    """What a part declares about its weights over the patch grid, read when weights of another resolution
    are loaded ([`load_weights`][tokenkit.weights.state.load_weights]); the defaults declare none."""

    grid_tables: ClassVar[Mapping[str, int]] = {}
    """Position tables over the patch grid ``grid_shape``: ``{parameter name: leading non-grid rows}`` for
    ``(prefix + gh * gw, W)`` tables, resampled when weights of another grid are loaded
    ([`load_weights`][tokenkit.weights.state.load_weights])."""
    token_tables: ClassVar[tuple[str, ...]] = ()
    """Tables with one row per latent token ``(N, W)``: never resampled (a tail-drop model takes a prefix)."""
    patch_weights: ClassVar[Mapping[str, tuple[int, ...]]] = {}
    """``{parameter name: dims whose size follows the patch size}``: a weight that differs in these dims
    only is refused as another patch size (not resampled)."""
    grid_shape: tuple[int, int] | None = None
    """Patch grid ``(rows, cols)`` of ``grid_tables`` (``None``: no grid tables)."""


class Encoder(PatchGridTables, nn.Module):
    """Kind ``encoder``: images ``(B, C, H, W)`` in [0, 1] -> latents ``(B, N, D)``.

    Examples:
        >>> import torch, tokenkit as tk
        >>> encoder = tk.build("titok-tiny").encoder
        >>> isinstance(encoder, tk.Encoder), encoder(torch.rand(1, 3, 32, 32)).shape
        (True, torch.Size([1, 8, 8]))
    """


class Quantizer(nn.Module):
    """Kind ``quantizer``: latents ``(B, N, D)`` -> [`QuantizerOutput`][tokenkit.contracts.QuantizerOutput].

    Examples:
        >>> import tokenkit as tk
        >>> rvq = tk.build_part("quantizer", tk.Part("rvq", num_quantizers=3, codebook_size=16, dim=4))
        >>> rvq.codebook_size, rvq.num_codebooks, rvq.supports_prefix
        (16, 3, False)
    """

    codebook_size: int | None = None
    """Number of ids per codebook ``K``; ``None`` for a continuous bottleneck (no ids)."""
    num_codebooks: int = 1
    """Ids per token ``Q`` (residual quantizers); ids are ``(B, N)`` when 1, else ``(B, N, Q)``."""
    supports_prefix: ClassVar[bool] = False
    """Decoding a prefix of the tokens is meaningful (trained with tail-drop)."""


class Decoder(PatchGridTables, nn.Module):
    """Kind ``decoder``: codes ``(B, N, D')`` -> images ``(B, C, H, W)`` (or proxy-code logits).

    Examples:
        >>> import tokenkit as tk
        >>> tk.build("titok-tiny").decoder.output_kind, tk.build("titok-l32", device="meta").decoder.output_kind
        ('images', 'logits')
    """

    output_kind: str = "images"
    """``"images"`` (pixels in [0, 1]) or ``"logits"`` (proxy-code logits for a pixel decoder)."""
    text_dim: int | None = None
    """Width of the text guidance the decoder reads (``forward(codes, text)`` with ``text (B, L, text_dim)``,
    TA-TiTok); ``None``: a decoder that takes no text."""



class Generator(nn.Module):
    """Kind ``generator``: token ids ``(B, N)`` + class labels -> logits ``(B, N, K)``, and sampling.

    A generator sets these in ``__init__`` from its config.

    Examples:
        >>> import tokenkit as tk
        >>> gen = tk.build("maskgit-titok-l32", device="meta")
        >>> gen.codebook_size, gen.num_tokens, gen.num_classes, gen.mask_id
        (4096, 32, 1000, 4096)
    """

    codebook_size: int
    """Ids of the tokenizer it generates for."""
    num_tokens: int
    """Tokens per image."""
    num_classes: int
    """Class labels it is conditioned on."""
    mask_id: int
    """The id of the mask token (masked generators)."""
    conditioning: ClassVar[str] = "class"
    """What it is conditioned on: ``"class"`` (labels ``(B,)``) or ``"text"`` (prompts, through its
    ``text_encoder``; MaskGen)."""
    autoregressive: ClassVar[bool] = False
    """Predicts each token from the ones before it (trained with
    [`NextTokens`][tokenkit.train.objectives.NextTokens]); else a masked generator (trained with
    [`MaskedTokens`][tokenkit.train.objectives.MaskedTokens])."""


class TextEncoder(nn.Module):
    """Kind ``text_encoder``: prompts -> [`TextEmbeddings`][tokenkit.contracts.TextEmbeddings].

    A text encoder is frozen and its weights come from its own source (its ``weights`` option), not
    from the model that holds it: they are left out of the holder's ``state_dict`` and a checkpoint
    without them loads (TA-TiTok's and MaskGen's released files hold no CLIP weights either).

    Examples:
        >>> import tokenkit as tk
        >>> text = tk.build_part("text_encoder", tk.Part("openclip", width=16, heads=2, layers=2, embed_dim=8,
        ...                                              context_length=12))
        >>> out = text(["a red rocket", ""])
        >>> out.tokens.shape, out.pooled.shape, text.state_dict()
        (torch.Size([2, 12, 16]), torch.Size([2, 8]), OrderedDict())
    """

    width: int
    """Width ``W`` of ``tokens`` and ``hidden``."""
    context_length: int
    """Tokens per prompt ``L``."""
    pooled_dim: int
    """Width ``E`` of ``pooled``."""

    def __init__(self) -> None:
        super().__init__()
        self._load_prefix = ""
        self.register_load_state_dict_post_hook(_forgive_missing_text_weights)

    def state_dict(self, *args, destination=None, prefix="", keep_vars=False):
        """Nothing: the weights are external (see the class note); ``destination`` is returned unchanged."""
        from collections import OrderedDict

        return OrderedDict() if destination is None else destination

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        self._load_prefix = prefix
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def train(self, mode: bool = True) -> TextEncoder:
        """Stays in eval mode (frozen)."""
        return super().train(False)

    def empty_prompt(self) -> TextEmbeddings:
        """The embeddings of the empty prompt ``""`` (one row): the unconditional text of classifier-free
        guidance and of text dropout. The encoder is frozen, so it is computed once per device, dtype and
        autocast state (not cached under ``torch.inference_mode``, whose tensors autograd cannot use later)."""
        weight = next(self.parameters(), None)
        device = weight.device if weight is not None else torch.device("cpu")
        key = (device, None if weight is None else weight.dtype, torch.is_autocast_enabled(device.type),
               torch.get_autocast_dtype(device.type))
        cached = self.__dict__.get("_empty_prompt")
        if cached is not None and cached[0] == key:
            return cached[1]
        embeddings = self([""])
        if not torch.is_inference_mode_enabled():
            self.__dict__["_empty_prompt"] = (key, embeddings)
        return embeddings


def _forgive_missing_text_weights(module: TextEncoder, incompatible) -> None:
    """A checkpoint may lack a text encoder's weights (they are external): drop them from the missing keys."""
    prefix = module._load_prefix
    incompatible.missing_keys[:] = [k for k in incompatible.missing_keys if not k.startswith(prefix)]


class Loss(nn.Module):
    """Kind ``loss``: [`LossInputs`][tokenkit.contracts.LossInputs] -> a scalar loss.

    Examples:
        >>> import torch, tokenkit as tk
        >>> from tokenkit.contracts import LossInputs
        >>> recon = tk.build_part("loss", tk.Part("recon", kind="l1"))
        >>> x = torch.zeros(1, 3, 4, 4)
        >>> recon.terms_of(LossInputs(x, x + 0.5, torch.tensor(0.0))).loss
        tensor(0.5000)
        >>> recon.trains_discriminator, recon.needs_targets
        (False, False)
    """

    needs_targets: bool = False
    """Reads ``LossInputs.targets`` (proxy codes of a teacher)."""
    uses_reconstructions: bool = True
    """Reads ``LossInputs.reconstructions`` (the decoded images)."""
    trains_discriminator: bool = False
    """Has a discriminator the trainer updates after each generator step, from ``start_step``; such a
    part also defines ``discriminator_loss(inputs) -> loss`` (e.g.
    [`AdversarialLoss`][tokenkit.losses.adversarial.AdversarialLoss])."""
    start_step: int = 0
    """First step at which the term (and its discriminator) is active."""

    def active(self, step: int) -> bool:
        """Whether the term counts at ``step`` (from ``start_step`` on)."""
        return step >= self.start_step

    def terms_of(self, inputs: LossInputs) -> LossOutput:
        """The loss and its named terms as a [`LossOutput`][tokenkit.contracts.LossOutput]
        (default: the loss alone, as ``"loss"``)."""
        loss = self(inputs)
        return LossOutput(loss, {"loss": loss.detach()})


class Discriminator(nn.Module):
    """Kind ``discriminator``: images ``(B, C, H, W)`` -> real / fake logits.

    Examples:
        >>> import torch, tokenkit as tk
        >>> d = tk.build_part("discriminator", tk.Part("nlayer", hidden_channels=4, num_stages=1, norm_groups=4,
        ...                                            pool_size=2))
        >>> isinstance(d, tk.Discriminator), d(torch.rand(2, 3, 32, 32)).shape
        (True, torch.Size([2, 1, 2, 2]))
    """


class FeatureExtractor(nn.Module):
    """Kind ``feature``: images -> features for evaluation metrics (e.g. the FID Inception).

    Examples:
        >>> import tokenkit as tk
        >>> inception = tk.build_part("feature", tk.Part("inception-v3-fid", weights="random"), device="meta")
        >>> isinstance(inception, tk.FeatureExtractor)
        True
    """


KIND_BASES: dict[str, type] = {
    "backbone": Backbone, "encoder": Encoder, "quantizer": Quantizer, "decoder": Decoder, "generator": Generator,
    "loss": Loss, "discriminator": Discriminator, "dataset": Dataset, "feature": FeatureExtractor,
    "text_encoder": TextEncoder,
}
"""The base class of each kind in [`KINDS`][tokenkit.registry.KINDS]."""
