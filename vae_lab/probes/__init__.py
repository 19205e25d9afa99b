"""Lightning callbacks that measure without changing training: gradient variance, ..."""

from vae_lab.probes.grad_variance import (
    GradientMoments,
    GradientVarianceProbe,
    gradient_moments,
    parameter_groups,
)

__all__ = ["GradientMoments", "GradientVarianceProbe", "gradient_moments", "parameter_groups"]
