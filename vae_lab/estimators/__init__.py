"""Gradient estimators: one module each, all with the interface of :class:`Estimator`."""

from vae_lab.estimators.base import Estimate, Estimator
from vae_lab.estimators.implicit import ImplicitEstimator
from vae_lab.estimators.reparam import ReparamEstimator
from vae_lab.estimators.rsvi import RSVIEstimator
from vae_lab.estimators.score import ScoreFunctionEstimator

__all__ = [
    "Estimate",
    "Estimator",
    "ImplicitEstimator",
    "RSVIEstimator",
    "ReparamEstimator",
    "ScoreFunctionEstimator",
]
