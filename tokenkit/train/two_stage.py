"""TiTok two-stage training helpers.

Official: ``configs/training/TiTok/stage{1,2}/*.yaml`` and ``create_model_and_loss_module`` in
``utils/train_utils.py`` L101-145 (stage 2 loads the teacher's ``decoder.*``/``quantize.*`` as
``pixel_*``, L132-144).

Stage 1 trains encoder, quantizer and a ``proxy``-head decoder to predict a
frozen MaskGIT-VQGAN's codes ([`ProxyCodes`][tokenkit.train.objectives.ProxyCodes]).
Stage 2 starts from the stage-1 weights plus the teacher's codebook and
decoder as the ``pixel_decoder``
([`init_stage2`][tokenkit.train.two_stage.init_stage2]), freezes encoder and
quantizer (``TrainConfig.freeze``) and fine-tunes the rest on pixels.
"""

from __future__ import annotations

import torch
from torch import nn

from tokenkit.decoders.vqgan import VQGANDecoder
from tokenkit.errors import ConfigError, WeightsError
from tokenkit.models.tokenizer import Tokenizer
from tokenkit.quantizers.vqgan import VQGANQuantizer
from tokenkit.weights.state import load_weights

STAGE2_FROZEN = ("encoder", "quantizer")
"""Parts frozen in stage 2 (officially also kept in eval mode)."""


def teacher_pixel_decoder_state(teacher: nn.Module) -> dict[str, torch.Tensor]:
    """The ``pixel_decoder`` weights taken from a MaskGIT-VQGAN teacher: its codebook and its decoder.

    Raises:
        ConfigError: The teacher is not a ``vqgan`` quantizer + decoder composition.

    Examples:
        >>> import tokenkit as tk
        >>> teacher = tk.build("maskgit-vqgan", image_size=32)  # give it pretrained=... in a real run
        >>> state = teacher_pixel_decoder_state(teacher)
        >>> state["codebook.weight"].shape  # 1024 codes of width 256
        torch.Size([1024, 256])
        >>> stage2 = tk.build("titok-tiny", legacy=True, patch_size=16)  # with a pixel decoder
        >>> sorted(state) == sorted(stage2.pixel_decoder.state_dict())
        True
    """
    if not (isinstance(teacher, Tokenizer) and isinstance(teacher.quantizer, VQGANQuantizer)
            and isinstance(teacher.decoder, VQGANDecoder)):
        raise ConfigError("the teacher must be a MaskGIT-VQGAN composition (a 'vqgan' quantizer with an "
                          "'embedding' codebook and a 'vqgan' decoder)")
    return {"codebook.weight": teacher.quantizer.embedding.weight.detach().clone(),
            **{k: v.detach().clone() for k, v in teacher.decoder.state_dict().items()}}


@torch.no_grad()
def init_stage2(model: nn.Module, stage1: dict[str, torch.Tensor] | nn.Module, teacher: nn.Module) -> nn.Module:
    """Initialise a two-stage TiTok for stage 2 in place, and return it.

    Args:
        model: The stage-2 composition (``proxy`` head + ``pixel_decoder``).
        stage1: Stage-1 weights (a state dict or the stage-1 model): every key
            except the ``pixel_decoder.*`` ones.
        teacher: The MaskGIT-VQGAN whose codebook and decoder become the pixel decoder.

    Raises:
        WeightsError: Stage-1 weights that miss keys, have extra keys or other shapes.
        ConfigError: A model without pixel decoder, or a teacher of another kind.

    Examples:
        >>> import torch, tokenkit as tk
        >>> teacher = tk.build("maskgit-vqgan", image_size=32)  # give it pretrained=... in a real run
        >>> stage1 = tk.build("titok-tiny", legacy=True, patch_size=16, pixel_decoder=False)  # trained in stage 1
        >>> model = init_stage2(tk.build("titok-tiny", legacy=True, patch_size=16), stage1, teacher)
        >>> torch.equal(model.encoder.latent_tokens, stage1.encoder.latent_tokens)
        True
        >>> torch.equal(model.pixel_decoder.codebook.weight, teacher.quantizer.embedding.weight)
        True
    """
    if not isinstance(model, Tokenizer) or model.pixel_decoder is None:
        raise ConfigError("stage 2 needs a composition with a pixel_decoder (e.g. titok-l32, or titok(legacy=True))")
    state = stage1.state_dict() if isinstance(stage1, nn.Module) else dict(stage1)
    extra = sorted(k for k in state if k.startswith("pixel_decoder."))
    if extra:
        raise WeightsError(f"stage-1 weights have no pixel decoder, got unexpected {extra[:5]}")
    pixel = {f"pixel_decoder.{k}": v for k, v in teacher_pixel_decoder_state(teacher).items()}
    try:
        load_weights(model, {**state, **pixel})
    except WeightsError as err:
        raise WeightsError(f"stage-1 weights + the teacher's pixel decoder do not fit this model "
                           f"(keys or shapes): {err}") from None
    return model
