"""Training: the accelerate-based trainer, objectives, batches, optimizer groups, schedule, EMA, checkpoints, demo."""

from tokenkit.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from tokenkit.train.data import BatchStream
from tokenkit.train.objectives import (
    DiffusionTokens,
    DiffusionTokensConfig,
    MaskedTokens,
    MaskedTokensConfig,
    Objective,
    ProxyCodes,
    Reconstruction,
    StepOutput,
    loss_from_module,
    reconstruction_loss,
)
from tokenkit.train.optim import EMA, cosine_schedule, parameter_groups
from tokenkit.train.trainer import NonFiniteLossError, TrainConfig, Trainer

__all__ = ["EMA", "BatchStream", "DiffusionTokens", "DiffusionTokensConfig", "MaskedTokens", "MaskedTokensConfig",
           "NonFiniteLossError", "Objective", "ProxyCodes", "Reconstruction", "StepOutput", "TrainConfig", "Trainer",
           "cosine_schedule", "latest_checkpoint", "load_checkpoint", "loss_from_module", "parameter_groups",
           "reconstruction_loss", "save_checkpoint"]
