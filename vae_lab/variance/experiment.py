r"""The toy gradient-variance experiments: many independent single-sample gradients, their statistics.

1. Families (Figurnov, Mohamed & Mnih, "Implicit Reparameterization Gradients", NeurIPS 2018, Figure 2
   style). For q = Dirichlet(alpha_1, alpha_rest) or q = VonMises(mu, kappa) and a fixed p of the same
   family, the objective is the cross-entropy

   .. math:: L(c) = E_{q_c}[f(z)], \qquad f(z) = -\log p(z),

   and each estimator gives single-sample estimates of dL/dc for the concentration c (alpha_1 or
   kappa). M independent copies of q (batch_shape (M,)), each with its own leaf copy of c, give M
   independent single-sample gradients in one backward pass; we report their mean, variance and the
   standard error of the mean, next to the exact gradient (:mod:`vae_lab.variance.theory`) and, from it,
   the bias (with its standard error) and the mean squared error (:mod:`vae_lab.variance.stats`), so
   that a biased estimator shows as biased, not merely as noisy.

   Estimators: implicit reparameterization, RSVI (Naesseth et al., 2017) with shape augmentation B
   (Dirichlet; B = 0 only where every concentration is >= 1, otherwise the row is NaN with a note; von
   Mises has one RSVI entry, B does not apply) and the score function without baseline.

2. The Gaussian lecture example: d/dtheta E_{N(theta, 1)}[z^2] = 2 theta, estimated by the average of N
   single-sample estimates, R repetitions per N, with the score-function and the pathwise
   (reparameterization) estimators, against :func:`vae_lab.variance.theory.gaussian_theory`.

Every estimator is the one of its config, ``conf/estimator/<name>.yaml``, built by Hydra's
``instantiate`` (:func:`build_estimator`), as in training and in the gradient-variance probe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.distributions import Distribution, Normal

from vae_lab.config import CONF_DIR, estimators_for, group_options
from vae_lab.distributions import Dirichlet, VonMises
from vae_lab.errors import ConfigError
from vae_lab.variance.stats import STAT_COLUMNS, gradient_stats
from vae_lab.variance.theory import (
    averaged_moments,
    dirichlet_exact_grad,
    gaussian_theory,
    sample_variance_std_error,
    vonmises_exact_grad,
)

FAMILY_NAMES = ("dirichlet", "vonmises")
#: The paper's comparison: the default of :func:`family_experiment`.
ESTIMATOR_NAMES = ("implicit", "rsvi", "score")
#: What the experiments change in an estimator's config: the paper compares the plain score function
#: (a moving-average baseline would start from the very batch it is meant to correct).
ESTIMATOR_OVERRIDES: dict[str, dict[str, Any]] = {"score": {"baseline": "none"}}
COLUMNS = [
    "family",
    "concentration",
    "estimator",
    "B",
    "n_samples",
    "mean",
    "variance",
    "std_error",
    "exact",
    "bias",
    "bias_se",
    "mse",
    "note",
]
GAUSSIAN_COLUMNS = [
    "estimator",
    "N",
    "repetitions",
    "mean",
    "variance",
    "theory_variance",
    "variance_std_error",
    "exact",
    "bias",
    "bias_se",
    "mse",
]


# -- estimators and distributions ------------------------------------------------------------------
def build_estimator(name: str, **overrides: Any) -> torch.nn.Module:
    """The estimator of ``conf/estimator/<name>.yaml`` (Hydra ``instantiate``), with the experiments'
    :data:`ESTIMATOR_OVERRIDES` and then ``overrides`` (e.g. ``B=3`` for RSVI) in place of its settings."""
    options = group_options("estimator")
    if name not in options:
        raise ConfigError("estimators", f"choose from {', '.join(options)}", name)
    config = OmegaConf.load(CONF_DIR / "estimator" / f"{name}.yaml")
    return instantiate(config, **{**ESTIMATOR_OVERRIDES.get(name, {}), **overrides})


def family_distributions(
    family: str, concentration: torch.Tensor, params: dict[str, Any]
) -> tuple[Distribution, Distribution]:
    """(q, p): q with the varied ``concentration`` (batch_shape that of the tensor), p the fixed target.

    ``params`` holds the fixed rest of q and p: for ``dirichlet`` ``rest`` (alpha_2, ...) and ``target``
    (p's concentration), for ``vonmises`` ``loc``, ``target_loc`` and ``target_concentration``.
    """
    c, dtype = concentration, concentration.dtype
    if family == "dirichlet":
        rest = torch.as_tensor(list(params["rest"]), dtype=dtype)
        p = Dirichlet(torch.as_tensor(list(params["target"]), dtype=dtype))
        q = Dirichlet(torch.cat([c[..., None], rest.expand(*c.shape, -1)], dim=-1))
        return q, p
    if family == "vonmises":
        p = VonMises(
            torch.tensor(float(params["target_loc"]), dtype=dtype),
            torch.tensor(float(params["target_concentration"]), dtype=dtype),
        )
        return VonMises(torch.full(c.shape, float(params["loc"]), dtype=dtype), c), p
    raise ConfigError("families", f"choose from {', '.join(FAMILY_NAMES)}", family)


def supported_estimators(family: str) -> list[str]:
    """The estimator options that give gradients for ``family`` (asked of the distribution itself)."""
    params = {
        "dirichlet": {"rest": [1.0], "target": [1.0, 1.0]},
        "vonmises": {"loc": 0.0, "target_loc": 0.0, "target_concentration": 1.0},
    }
    q, _ = family_distributions(family, torch.ones(1, dtype=torch.float64), params[family])
    return estimators_for(q)


# -- the families ----------------------------------------------------------------------------------
def single_sample_grads(
    family: str,
    concentration: float,
    estimator: torch.nn.Module,
    n: int,
    params: dict[str, Any],
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """``n`` independent single-sample estimates of d/dc E_q[-log p(z)], c the concentration varied.

    ``params`` as for :func:`family_distributions`. Returns a float64 tensor of shape (n,).
    """
    c = torch.full((n,), float(concentration), dtype=dtype, requires_grad=True)
    q, p = family_distributions(family, c, params)
    estimate = estimator(q, lambda z: -p.log_prob(z), 1)
    (grad,) = torch.autograd.grad(estimate.surrogate.sum(), c)
    return grad.detach().to(torch.float64)


def family_experiment(
    family: str,
    concentrations: Sequence[float],
    params: dict[str, Any],
    estimators: Sequence[str] = ESTIMATOR_NAMES,
    rsvi_B: Sequence[int] = (0, 1, 3, 10),
    n_samples: int = 10_000,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> pd.DataFrame:
    """The variance table of one family: a row per (concentration, estimator[, B]), columns :data:`COLUMNS`.

    Seeded with ``seed`` on entry, so a family's numbers do not depend on which other families run.
    """
    torch.manual_seed(seed)
    rows = []
    for conc in concentrations:
        conc = float(conc)
        if family == "dirichlet":
            exact = dirichlet_exact_grad([conc, *params["rest"]], params["target"])
            min_alpha = min([conc, *params["rest"]])
        else:
            exact = vonmises_exact_grad(
                conc, params["loc"], params["target_loc"], params["target_concentration"]
            )
            min_alpha = math.inf
        for name in estimators:
            # von Mises: one RSVI entry (B does not apply to the Best-Fisher proposal)
            Bs: list[int | None] = list(rsvi_B) if (name == "rsvi" and family == "dirichlet") else [None]
            for B in Bs:
                row = {
                    "family": family,
                    "concentration": conc,
                    "estimator": name,
                    "B": math.nan if B is None else B,
                    "n_samples": n_samples,
                    "exact": exact,
                    "note": "",
                }
                if B == 0 and min_alpha < 1.0:
                    row.update(
                        dict.fromkeys(STAT_COLUMNS, math.nan), note="B=0 needs every concentration >= 1"
                    )
                else:
                    estimator = build_estimator(name) if B is None else build_estimator(name, B=B)
                    grads = single_sample_grads(family, conc, estimator, n_samples, params, dtype)
                    row.update(gradient_stats(grads, exact))
                rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


# -- the Gaussian example --------------------------------------------------------------------------
def gaussian_estimates(
    estimator: str,
    theta: float,
    n: int,
    repetitions: int,
    dtype: torch.dtype = torch.float64,
    chunk: int = 1 << 20,
) -> torch.Tensor:
    """``repetitions`` estimates of d/dtheta E_{N(theta,1)}[z^2], each an average of ``n`` single-sample ones.

    Uses vae-lab's estimators on q = Normal(theta, 1) with batch_shape (r n,): the copies of one
    repetition share a leaf theta_r, so its gradient is the sum of their n single-sample gradients.
    Repetitions are processed in chunks of about ``chunk`` samples to bound memory.
    """
    est = build_estimator(estimator)
    out = []
    per_chunk = max(1, chunk // n)
    for start in range(0, repetitions, per_chunk):
        r = min(per_chunk, repetitions - start)
        th = torch.full((r,), float(theta), dtype=dtype, requires_grad=True)
        q = Normal(th.repeat_interleave(n), torch.ones((), dtype=dtype))
        estimate = est(q, lambda z: z * z, 1)
        (grad,) = torch.autograd.grad(estimate.surrogate.sum(), th)
        out.append(grad.detach().to(torch.float64) / n)
    return torch.cat(out)


def gaussian_experiment(
    theta: float = 2.0,
    ns: Sequence[int] = (10, 100, 1000, 10_000, 100_000),
    repetitions: int = 100,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    estimators: Sequence[str] = ("score", "reparam"),
) -> pd.DataFrame:
    """Mean, variance, bias and MSE over ``repetitions`` of the N-sample average, per estimator and N, with
    theory.

    ``variance_std_error`` is the theoretical standard deviation of the sample variance (fourth moment
    of the averaged estimator from :func:`gaussian_theory` and :func:`averaged_moments`).
    """
    torch.manual_seed(seed)
    theory = gaussian_theory(theta)
    rows = []
    for name in estimators:
        _, sigma2, mu4 = theory[name]
        for n in ns:
            values = gaussian_estimates(name, theta, int(n), repetitions, dtype)
            var_n, mu4_n = averaged_moments(sigma2, mu4, int(n))
            stats = gradient_stats(values, 2.0 * theta)
            rows.append(
                {
                    "estimator": name,
                    "N": int(n),
                    "repetitions": repetitions,
                    **stats,
                    "theory_variance": var_n,
                    "variance_std_error": sample_variance_std_error(var_n, mu4_n, repetitions),
                    "exact": 2.0 * theta,
                }
            )
    return pd.DataFrame(rows, columns=GAUSSIAN_COLUMNS)
