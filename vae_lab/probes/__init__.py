"""Lightning callbacks that measure without changing training: gradient variance, image grids, ..."""

from vae_lab.probes.denoising import DenoisingImages
from vae_lab.probes.grad_variance import (
    GradientMoments,
    GradientVarianceProbe,
    gradient_moments,
    parameter_groups,
)
from vae_lab.probes.images import PriorSampleImages, ReconstructionImages, tile_images
from vae_lab.probes.latent_grid import LatentGridImages, marginal_quantiles
from vae_lab.probes.latent_views import LatentProjector, LatentScatter, posterior_means
from vae_lab.probes.scalar_layout import ScalarLayout

__all__ = [
    "DenoisingImages",
    "GradientMoments",
    "GradientVarianceProbe",
    "LatentGridImages",
    "LatentProjector",
    "LatentScatter",
    "PriorSampleImages",
    "ReconstructionImages",
    "ScalarLayout",
    "gradient_moments",
    "marginal_quantiles",
    "parameter_groups",
    "posterior_means",
    "tile_images",
]
