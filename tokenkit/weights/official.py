"""Converters between the official bytedance/1d-tokenizer checkpoint layouts and tokenkit's
(tokenizers, the MaskGIT-VQGAN teacher, the ImageBert / UViTBert generators and RAR).

Layouts: the state dicts of the official ``TiTok`` and ``PretrainedTokenizer``
(``modeling/titok.py``), ``ImageBert`` / ``UViTBert`` (``modeling/maskgit.py``) and ``RAR``
(``modeling/rar.py``), listed
key by key in ``tests/fixtures/official_keys/``. The official
TiTok keeps ``latent_tokens`` at the top level, packs attention as
``nn.MultiheadAttention`` (``in_proj_*``, ``out_proj``), names blocks
``transformer.{i}`` with ``ln_1``/``ln_2``/``mlp.c_fc``/``mlp.c_proj`` and
stores its token projections as 1x1 convs; MaskGIT-VQGAN keys are tokenkit's
with ``quantize`` for ``quantizer``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from tokenkit.weights.keymap import Fusion, KeyMap, Rule

_BLOCK = "{part}.transformer.{i}."
_OURS = "{part}.backbone.blocks.{i}."

TITOK = KeyMap((
    Rule("latent_tokens", "encoder.latent_tokens"),
    Rule(_BLOCK + "ln_1.{p}", _OURS + "norm1.{p}"),
    Rule(_BLOCK + "attn.in_proj_weight", _OURS + "attn.qkv.weight"),
    Rule(_BLOCK + "attn.in_proj_bias", _OURS + "attn.qkv.bias"),
    Rule(_BLOCK + "attn.out_proj.{p}", _OURS + "attn.proj.{p}"),
    Rule(_BLOCK + "ln_2.{p}", _OURS + "norm2.{p}"),
    Rule(_BLOCK + "mlp.c_fc.{p}", _OURS + "mlp.fc1.{p}"),
    Rule(_BLOCK + "mlp.c_proj.{p}", _OURS + "mlp.fc2.{p}"),
    Rule("encoder.conv_out.{p}", "encoder.proj.{p}", reshape="conv1x1"),
    Rule("decoder.ffn.{i}.{p}", "decoder.ffn.{i}.{p}", reshape="conv1x1"),
    Rule("quantize.embedding.weight", "quantizer.embedding.weight"),
    Rule("pixel_quantize.embedding.weight", "pixel_decoder.codebook.weight"),
    Rule("pixel_decoder.{rest}", "pixel_decoder.{rest}"),
    Rule("{part}.{rest}", "{part}.{rest}"),
))
"""Official ``TiTok`` (all nine released tokenizers, stage 1 and 2) and ``TATiTok`` (its decoder adds
``text_guidance_proj`` and ``text_guidance_positional_embedding``, same names here) <-> tokenkit ``Tokenizer``."""

MASKGIT_VQGAN = KeyMap((
    Rule("quantize.embedding.weight", "quantizer.embedding.weight"),
    Rule("{part}.{rest}", "{part}.{rest}"),
))
"""Official ``PretrainedTokenizer`` (``maskgit-vqgan-imagenet-f16-256.bin``) <-> tokenkit ``maskgit-vqgan``."""

_LAYER = "model.encoder.layer.{i}."
_OURS_LAYER = "backbone.blocks.{i}."

IMAGEBERT = KeyMap(
    rules=(
        Rule("model.embeddings.word_embeddings.weight", "token_embedding.weight"),
        Rule("model.embeddings.position_embeddings.weight", "position_embedding"),
        Rule("model.embeddings.token_type_embeddings.weight", "backbone.token_type"),
        Rule("model.embeddings.LayerNorm.{p}", "backbone.embed_norm.{p}"),
        Rule(_LAYER + "attention.self.qkv.{p}", _OURS_LAYER + "qkv.{p}"),
        Rule(_LAYER + "attention.output.dense.{p}", _OURS_LAYER + "proj.{p}"),
        Rule(_LAYER + "attention.output.LayerNorm.{p}", _OURS_LAYER + "norm1.{p}"),
        Rule(_LAYER + "intermediate.dense.{p}", _OURS_LAYER + "fc1.{p}"),
        Rule(_LAYER + "output.dense.{p}", _OURS_LAYER + "fc2.{p}"),
        Rule(_LAYER + "output.LayerNorm.{p}", _OURS_LAYER + "norm2.{p}"),
        Rule("model.lm_head.{p}", "lm_head.{p}"),
    ),
    fusions=(Fusion(_LAYER + "attention.self.{name}.{p}", ("query", "key", "value"), "qkv"),),
)
"""Official ``ImageBert`` (Hugging Face ``BertModel`` under ``model.``) <-> ``maskgit`` with a ``bert`` backbone."""

UVITBERT = KeyMap((
    Rule("embeddings.weight", "token_embedding.weight"),
    Rule("pos_embed", "position_embedding", reshape="leading_one"),
    Rule("in_blocks.{rest}", "backbone.in_blocks.{rest}"),
    Rule("mid_block.{rest}", "backbone.mid_block.{rest}"),
    Rule("out_blocks.{rest}", "backbone.out_blocks.{rest}"),
    Rule("norm.{p}", "backbone.norm.{p}"),
    Rule("lm_head.{p}", "lm_head.{p}"),
))
"""Official ``UViTBert`` <-> ``maskgit`` with a ``uvit`` backbone."""

RAR = KeyMap((
    Rule("cls_token", "start_token", reshape="leading_one"),
    Rule("pos_embed", "position_embedding", reshape="leading_one"),
    Rule("target_aware_pos_embed", "target_position_embedding", reshape="leading_one"),
    Rule("timesteps_embeddings", "step_embedding", reshape="leading_one"),
    Rule("embeddings.weight", "token_embedding.weight"),
    Rule("blocks.{i}.adaLN_modulation.1.{p}", "backbone.blocks.{i}.modulation.{p}"),
    Rule("blocks.{i}.{rest}", "backbone.blocks.{i}.{rest}"),
    Rule("adaln_before_head.adaLN_modulation.1.{p}", "head_modulation.{p}"),
    Rule("lm_head.{p}", "lm_head.{p}"),
))
"""Official ``RAR`` (``modeling/rar.py``; ``rar_{b,l,xl,xxl}.bin``) <-> ``ar`` with a ``dit`` backbone."""


class TiedHeadKeyMap(KeyMap):
    """A [`KeyMap`][tokenkit.weights.keymap.KeyMap] for official ``MaskGen_VQ``: its ``WeightTiedLMHead``
    (``modeling/modules/blocks.py`` L427-439) registers the embedding table again as ``lm_head.weight``
    (no ``lm_head.bias``). That copy is dropped on the way in (or taken as ``embeddings.weight`` when a file
    kept only it); tokenkit's tied head has no parameter, so the way back gives ``embeddings.weight`` alone,
    as the released ``model.safetensors`` (safetensors keeps one name of shared tensors).

    Examples:
        >>> import torch
        >>> table = torch.zeros(10, 4)
        >>> official = {"embeddings.weight": table, "lm_head.weight": table, "pos_embed": torch.zeros(1, 3, 4)}
        >>> sorted(MASKGEN_VQ.to_tokenkit(official))  # the tied copy is dropped
        ['position_embedding', 'token_embedding.weight']
        >>> sorted(MASKGEN_VQ.to_tokenkit({"lm_head.weight": table, "pos_embed": torch.zeros(1, 3, 4)}))
        ['position_embedding', 'token_embedding.weight']
    """

    def to_tokenkit(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        state_dict = dict(state_dict)
        if "lm_head.weight" in state_dict and "lm_head.bias" not in state_dict:
            state_dict.setdefault("embeddings.weight", state_dict.pop("lm_head.weight"))
        return super().to_tokenkit(state_dict)


MASKGEN_VQ = TiedHeadKeyMap((
    Rule("embeddings.weight", "token_embedding.weight"),
    Rule("pos_embed", "position_embedding", reshape="leading_one"),
    Rule("text_embed_proj.{p}", "text_proj.{p}"),
    Rule("cond_pooled_proj.{p}", "pooled_proj.{p}"),
    Rule("blocks.{i}.{rest}", "backbone.blocks.{i}.{rest}"),
    Rule("norm.linear.{p}", "backbone.norm.linear.{p}"),
    Rule("lm_head.{p}", "lm_head.{p}"),
))
"""Official ``MaskGen_VQ`` (``modeling/maskgen.py``; ``turkeyju/generator_maskgen_vq_{l,xl}``) <-> ``maskgen``
with an ``mmdit`` backbone."""

MASKGEN_KL = KeyMap((
    Rule("mask_token", "mask_token", reshape="leading_one"),
    Rule("decoder_pos_embed_learned", "position_embedding", reshape="leading_one"),
    Rule("diffusion_pos_embed_learned", "head_position_embedding", reshape="leading_one"),
    Rule("text_emb.{p}", "text_proj.{p}"),
    Rule("text_pooled_emb.{p}", "pooled_proj.{p}"),
    Rule("z_proj.{p}", "token_proj.{p}"),
    Rule("z_proj_ln.{p}", "token_norm.{p}"),
    Rule("decoder_blocks.{i}.{rest}", "backbone.blocks.{i}.{rest}"),
    Rule("decoder_norm.{rest}", "backbone.norm.{rest}"),
    Rule("diffloss.net.{rest}", "head.{rest}"),
))
"""Official ``MaskGen_KL`` (``modeling/maskgen.py``; ``turkeyju/generator_maskgen_kl_{l,xl}``) <-> ``maskgen-kl``
with an ``mmdit`` backbone."""

IGNORED_KEYS = frozenset({"model.embeddings.position_ids", "quantize.embed_prob"})
"""Harmless extras of some official checkpoints (old transformers buffers, clustering-VQ statistics)."""


def detect_layout(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Name the layout of a state dict: ``"titok"``, ``"tatitok"`` (TiTok with TA-TiTok's text-aware decoder),
    ``"maskgit-vqgan"``, ``"imagebert"``, ``"uvitbert"``, ``"rar"``, ``"maskgen-vq"``, ``"maskgen-kl"``
    (official) or ``"tokenkit"``.

    Examples:
        >>> import tokenkit as tk
        >>> model = tk.build("titok-tiny", legacy=True, patch_size=16, pixel_decoder=False)
        >>> detect_layout(model.state_dict())
        'tokenkit'
        >>> detect_layout(TITOK.to_foreign(model.state_dict()))  # as the official TiTok stores it
        'titok'
    """
    keys = set(state_dict)
    if any(k.startswith("model.embeddings.") for k in keys):
        return "imagebert"
    if "target_aware_pos_embed" in keys:
        return "rar"
    if "embeddings.weight" in keys and any(k.startswith("in_blocks.") for k in keys):
        return "uvitbert"
    if "latent_tokens" in keys or any(k.startswith(("encoder.transformer.", "decoder.transformer.")) for k in keys):
        return "tatitok" if "decoder.text_guidance_proj.weight" in keys else "titok"
    if "quantize.embedding.weight" in keys and any(k.startswith("decoder.up.") for k in keys):
        return "maskgit-vqgan"
    if "z_proj.weight" in keys and any(k.startswith("diffloss.net.") for k in keys):
        return "maskgen-kl"
    if "text_embed_proj.weight" in keys and "cond_pooled_proj.weight" in keys:
        return "maskgen-vq"
    return "tokenkit"


OFFICIAL_LAYOUTS: dict[str, KeyMap] = {"titok": TITOK, "tatitok": TITOK, "maskgit-vqgan": MASKGIT_VQGAN,
                                       "imagebert": IMAGEBERT, "uvitbert": UVITBERT, "rar": RAR,
                                       "maskgen-kl": MASKGEN_KL, "maskgen-vq": MASKGEN_VQ}
GENERATOR_LAYOUTS = frozenset({"imagebert", "uvitbert", "rar", "maskgen-kl", "maskgen-vq"})


def to_tokenkit(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert an official state dict (any layout above) to tokenkit's; tokenkit dicts pass through.

    Known harmless extras ([`IGNORED_KEYS`][tokenkit.weights.official.IGNORED_KEYS]) are dropped.

    Raises:
        KeyError: A key of an official layout that no conversion rule covers.

    Examples:
        An official TiTok state dict (here made from a tiny model; a released checkpoint is read
        with [`load_state_dict`][tokenkit.weights.io.load_state_dict]):

        >>> import tokenkit as tk
        >>> model = tk.build("titok-tiny", legacy=True, patch_size=16, pixel_decoder=False)
        >>> official = TITOK.to_foreign(model.state_dict())
        >>> tuple(official["encoder.conv_out.weight"].shape)  # a 1x1 conv in the official layout
        (8, 64, 1, 1)
        >>> converted = to_tokenkit(official)
        >>> tuple(converted["encoder.proj.weight"].shape)
        (8, 64)
        >>> tk.load_weights(model, converted)  # fits exactly
    """
    state_dict = {k: v for k, v in state_dict.items() if k not in IGNORED_KEYS}
    layout = detect_layout(state_dict)
    return dict(state_dict) if layout == "tokenkit" else OFFICIAL_LAYOUTS[layout].to_tokenkit(state_dict)
