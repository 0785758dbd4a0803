"""Loss parts (kind ``"loss"``): each maps [`LossInputs`][tokenkit.contracts.LossInputs] to a scalar.

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
from tokenkit.registry import import_submodules

__all__ = ["AdversarialLoss", "CompositeLoss", "LPIPSLoss", "LeCAM", "LossInputs", "LossOutput",
           "ProxyCrossEntropy", "QuantizerLoss", "ReconstructionLoss", "hinge_discriminator_loss", "recipes"]

MODULES = import_submodules(__name__, __path__)
"""Every module of the package, imported: each part file registers itself, so adding a part needs no
edit here."""
