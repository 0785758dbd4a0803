"""Evaluation: the FID Inception as a ``feature`` part, FID / IS / KID / precision-recall / sFID,
protocol presets (``titok``, ``adm``, ``clean``), reference statistics, and the runners.

Examples:
    >>> from tokenkit.evaluation import PROTOCOLS
    >>> sorted(PROTOCOLS)
    ['adm', 'clean', 'titok']
"""

from tokenkit.evaluation import inception  # noqa: F401  (registers the feature part)
from tokenkit.evaluation.inception_weights import find_inception_weights
from tokenkit.evaluation.protocols import PROTOCOLS, Protocol, get_protocol
from tokenkit.evaluation.rate_distortion import RateDistortionResult, rate_distortion
from tokenkit.evaluation.reference import ReferenceStatistics, load_reference, save_reference
from tokenkit.evaluation.result import EvaluationResult
from tokenkit.evaluation.runner import evaluate_generation, evaluate_reconstruction, reference_statistics

__all__ = [
    "PROTOCOLS", "EvaluationResult", "Protocol", "RateDistortionResult", "ReferenceStatistics",
    "evaluate_generation", "evaluate_reconstruction", "find_inception_weights", "get_protocol", "load_reference",
    "rate_distortion", "reference_statistics", "save_reference",
]
