"""Training: the accelerate-based trainer, optimizer groups, schedule, EMA, checkpoints, the demo."""

from tokenkit.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from tokenkit.train.optim import EMA, cosine_schedule, parameter_groups
from tokenkit.train.trainer import TrainConfig, Trainer, reconstruction_loss

__all__ = ["EMA", "TrainConfig", "Trainer", "cosine_schedule", "latest_checkpoint", "load_checkpoint",
           "parameter_groups", "reconstruction_loss", "save_checkpoint"]
