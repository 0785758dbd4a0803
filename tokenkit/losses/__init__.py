"""Loss parts (kind ``"loss"``): each maps [`LossInputs`][tokenkit.losses.base.LossInputs] to a scalar.

Parts: ``recon``, ``lpips``, ``quantizer``, ``proxy-ce``, ``adversarial``,
``composite``; reference compositions in [`recipes`][tokenkit.losses.recipes].
"""

from tokenkit.losses import recipes
from tokenkit.losses.adversarial import AdversarialLoss, LeCAM, hinge_discriminator_loss
from tokenkit.losses.base import LossInputs, LossOutput
from tokenkit.losses.composite import CompositeLoss
from tokenkit.losses.lpips import LPIPSLoss
from tokenkit.losses.proxy_ce import ProxyCrossEntropy
from tokenkit.losses.quantizer import QuantizerLoss
from tokenkit.losses.recon import ReconstructionLoss

__all__ = ["AdversarialLoss", "CompositeLoss", "LPIPSLoss", "LeCAM", "LossInputs", "LossOutput",
           "ProxyCrossEntropy", "QuantizerLoss", "ReconstructionLoss", "hinge_discriminator_loss", "recipes"]
