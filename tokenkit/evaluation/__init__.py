"""Evaluation: Inception features, FID / IS / KID / precision-recall / sFID, protocols and runners."""

from tokenkit.evaluation import inception  # noqa: F401  (registers the feature part)
