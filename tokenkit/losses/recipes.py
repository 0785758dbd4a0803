"""Reference loss compositions of TiTok's training recipes.

Official: ``ReconstructionLoss_Stage1`` / ``_Stage2`` / ``_Single_Stage`` in ``modeling/modules/losses.py``
(L68-354) with the weights of ``configs/training/TiTok/stage{1,2}/*.yaml`` and
``configs/training/TA-TiTok/*.yaml``.

Each function returns a ``Part("composite", ...)``; build it with
``tk.build_part("loss", part)``. Replaced official terms:

* The official **stage-2** perceptual loss is the MSE between the 1000-way
  ImageNet logits of a frozen torchvision ConvNeXt-Small (``convnext_s``);
  tokenkit uses **LPIPS (VGG)** with the same weight 0.1 instead.
* The official **single-stage** perceptual loss is ``"lpips-convnext_s-1.0-0.1"``
  with weight 1.1, i.e. ``1.0 * LPIPS + 0.1 * ConvNeXt``; tokenkit keeps the
  LPIPS part (weight ``perceptual_weight``, default 1.0) and drops the ConvNeXt part.
* The VAE recipe's reconstruction term is officially divided by
  ``exp(logvar)`` with a fixed ``logvar = 0``, which is the identity, so it is plain L2.
* The discriminator step (hinge + LeCAM 0.001, decay 0.999) belongs to the
  ``adversarial`` term: ``loss.terms["adversarial"].discriminator_loss(inputs)``.

Examples:
    >>> from tokenkit.losses import recipes
    >>> print([name for name, _, _ in recipes.stage1().config["terms"]])
    ['proxy_ce', 'quantizer']
"""

from __future__ import annotations

from tokenkit.specs import Part


def _adversarial(weight: float, start: int) -> tuple[str, float, Part]:
    return ("adversarial", weight, Part("adversarial", start_step=start, lecam_weight=0.001, lecam_decay=0.999))


def _perceptual(weight: float, pretrained: bool) -> tuple[str, float, Part]:
    return ("perceptual", weight, Part("lpips", pretrained=pretrained))


def single_stage_vq(*, perceptual_weight: float = 1.0, discriminator_start: int = 200_000,
                    lpips_pretrained: bool = True) -> Part:
    """TA-TiTok / VQ single stage: L2 1.0 + LPIPS + VQ loss 1.0 + adversarial 0.1 from step 200,000.

    Args:
        perceptual_weight: LPIPS weight (official: 1.0 LPIPS next to 0.1 ConvNeXt, which is dropped).
        discriminator_start: First step of the adversarial terms.
        lpips_pretrained: ``False`` for an offline, randomly initialised LPIPS (tests only).
    """
    return Part("composite", terms=(("reconstruction", 1.0, Part("recon", kind="l2")),
                                    _perceptual(perceptual_weight, lpips_pretrained),
                                    ("quantizer", 1.0, Part("quantizer")),
                                    _adversarial(0.1, discriminator_start)))


def single_stage_vae(*, kl_weight: float = 1e-6, perceptual_weight: float = 1.0,
                     discriminator_start: int = 200_000, lpips_pretrained: bool = True) -> Part:
    """Single stage with the ``gaussian`` bottleneck: as [`single_stage_vq`][tokenkit.losses.recipes.single_stage_vq]
    with the KL (the bottleneck's loss, sum over tokens / batch) at weight ``kl_weight`` (1e-6)."""
    return Part("composite", terms=(("reconstruction", 1.0, Part("recon", kind="l2")),
                                    _perceptual(perceptual_weight, lpips_pretrained),
                                    ("kl", kl_weight, Part("quantizer")),
                                    _adversarial(0.1, discriminator_start)))


def stage1() -> Part:
    """TiTok stage 1: proxy-code cross-entropy 1.0 + VQ loss 1.0 (needs ``targets``, the teacher's codes)."""
    return Part("composite", terms=(("proxy_ce", 1.0, Part("proxy-ce")), ("quantizer", 1.0, Part("quantizer"))))


def stage2(*, perceptual_weight: float = 0.1, discriminator_start: int = 20_000,
           lpips_pretrained: bool = True) -> Part:
    """TiTok stage 2 (decoder fine-tuning): L2 1.0 + LPIPS 0.1 (official: ConvNeXt-S logits MSE)
    + adversarial 0.01 from step 20,000. The quantizer weight is 0 officially, so the term is omitted."""
    return Part("composite", terms=(("reconstruction", 1.0, Part("recon", kind="l2")),
                                    _perceptual(perceptual_weight, lpips_pretrained),
                                    _adversarial(0.01, discriminator_start)))


RECIPES = {"stage1": stage1, "stage2": stage2, "single_stage_vq": single_stage_vq, "single_stage_vae": single_stage_vae}
"""The reference loss compositions by name (recipe files write ``loss: {recipe: NAME, ...options}``)."""
