"""Lightning callbacks that measure without changing training: gradient variance, image grids, ..."""

from vae_lab.probes.grad_variance import (
    GradientMoments,
    GradientVarianceProbe,
    gradient_moments,
    parameter_groups,
)
from vae_lab.probes.images import PriorSampleImages, ReconstructionImages, tile_images
from vae_lab.probes.latent_grid import LatentGridImages, marginal_quantiles

__all__ = [
    "GradientMoments",
    "GradientVarianceProbe",
    "LatentGridImages",
    "PriorSampleImages",
    "ReconstructionImages",
    "gradient_moments",
    "marginal_quantiles",
    "parameter_groups",
    "tile_images",
]
