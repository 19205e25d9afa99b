r"""`vae-lab variance`: the toy gradient-variance experiments.

1. Families (Figurnov, Mohamed & Mnih, "Implicit Reparameterization Gradients", NeurIPS 2018, Figure 2
   style). For q = Dirichlet(alpha_1, alpha_rest) or q = VonMises(mu, kappa) and a fixed p of the same
   family, the objective is the cross-entropy

   .. math:: L(c) = E_{q_c}[f(z)], \qquad f(z) = -\log p(z),

   and each estimator gives single-sample estimates of dL/dc for the concentration c (alpha_1 or
   kappa). M independent copies of q (batch_shape (M,)), each with its own leaf copy of c, give M
   independent single-sample gradients in one backward pass; we report their mean, variance and the
   standard error of the mean, next to the exact gradient and, from it, the bias (with its standard
   error) and the mean squared error (:mod:`vae_lab.variance_stats`), so that a biased estimator shows
   as biased, not merely as noisy:

   * Dirichlet: f(z) = -sum_i (a_i - 1) log z_i + log B(a) and E_q[log z_i] = psi(alpha_i) - psi(alpha_0),
     so dL/dalpha_1 = -(a_1 - 1) psi'(alpha_1) + (sum_i (a_i - 1)) psi'(alpha_0), alpha_0 = sum_i alpha_i.
   * von Mises: f(z) = -kappa_p cos(z - mu_p) + log(2 pi I_0(kappa_p)) and
     E_q[cos(z - mu_p)] = A(kappa) cos(mu - mu_p), A = I_1/I_0, so
     dL/dkappa = -kappa_p cos(mu - mu_p) A'(kappa), A'(kappa) = 1 - A/kappa - A^2.

   Estimators: implicit reparameterization, RSVI (Naesseth et al., 2017) with shape augmentation B
   (Dirichlet; B = 0 only where every concentration is >= 1, otherwise the row is NaN with a note; von
   Mises has one RSVI entry, B does not apply) and the score function without baseline.

2. The Gaussian lecture example: d/dtheta E_{N(theta, 1)}[z^2] = 2 theta, estimated by the average of N
   single-sample estimates, R repetitions per N, with the score-function and the pathwise
   (reparameterization) estimators. Per sample, with z = theta + eps,

   * pathwise: 2 z, variance 4;
   * score: z^2 (z - theta) = theta^2 eps + 2 theta eps^2 + eps^3, variance theta^4 + 14 theta^2 + 15
     (87 at theta = 2),

   so the average of N has variance 4/N and (theta^4 + 14 theta^2 + 15)/N; bias and MSE of the average
   are reported as for the families. :func:`gaussian_theory` computes these and the fourth central
   moments from the moments of the normal.

The Hydra task :func:`task` only validates the config, runs both, writes ``variance.csv``,
``variance.png``, ``gaussian.csv`` and ``gaussian.png`` into the run directory and prints tables.
"""

from __future__ import annotations

import logging
import math
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.distributions import Normal

import vae_lab.config  # noqa: F401  (registers the resolvers a job needs)
from vae_lab.distributions import Dirichlet, VonMises
from vae_lab.errors import ConfigError, check
from vae_lab.estimators import ImplicitEstimator, ReparamEstimator, RSVIEstimator, ScoreFunctionEstimator
from vae_lab.variance_stats import STAT_COLUMNS, bias_in_standard_errors, gradient_stats

log = logging.getLogger("vae_lab.variance")

FAMILY_NAMES = ("dirichlet", "vonmises")
ESTIMATOR_NAMES = ("implicit", "rsvi", "score")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
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


# -- exact gradients -------------------------------------------------------------------------------
def dirichlet_exact_grad(alpha: Sequence[float], target: Sequence[float]) -> float:
    r"""d/dalpha_1 E_{Dir(alpha)}[-log Dir(z; a)], a = ``target``:

    -(a_1 - 1) psi'(alpha_1) + (sum_i (a_i - 1)) psi'(alpha_0), alpha_0 = sum_i alpha_i.
    """
    alpha_t = torch.as_tensor(alpha, dtype=torch.float64)
    a = torch.as_tensor(target, dtype=torch.float64)
    trigamma = lambda x: torch.polygamma(1, x)  # noqa: E731
    value = -(a[0] - 1) * trigamma(alpha_t[0]) + (a - 1).sum() * trigamma(alpha_t.sum())
    return float(value)


def bessel_ratio_derivative(kappa: float) -> float:
    """A'(kappa) for A = I_1/I_0: 1 - A/kappa - A^2 (scaled Bessel functions, no overflow)."""
    k = torch.tensor(kappa, dtype=torch.float64)
    A = torch.special.i1e(k) / torch.special.i0e(k)
    return float(1.0 - A / k - A * A)


def vonmises_exact_grad(kappa: float, loc: float, target_loc: float, target_concentration: float) -> float:
    r"""d/dkappa E_{vM(mu, kappa)}[-log vM(z; mu_p, kappa_p)] = -kappa_p cos(mu - mu_p) A'(kappa).

    mu = ``loc``, mu_p = ``target_loc``, kappa_p = ``target_concentration``.
    """
    return -target_concentration * math.cos(loc - target_loc) * bessel_ratio_derivative(kappa)


# -- single-sample gradients -----------------------------------------------------------------------
def make_estimator(name: str, B: int | None = None) -> torch.nn.Module:
    if name == "implicit":
        return ImplicitEstimator()
    if name == "rsvi":
        return RSVIEstimator(B=1 if B is None else B)
    if name == "score":
        return ScoreFunctionEstimator(baseline="none")
    if name == "reparam":
        return ReparamEstimator()
    raise ConfigError("estimators", f"choose from {', '.join(ESTIMATOR_NAMES)}", name)


def single_sample_grads(
    family: str,
    concentration: float,
    estimator: torch.nn.Module,
    n: int,
    params: dict[str, Any],
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """``n`` independent single-sample estimates of d/dc E_q[-log p(z)], c the concentration varied.

    ``params`` holds the fixed rest of q and p: for ``dirichlet`` ``rest`` (alpha_2, ...) and ``target``
    (p's concentration), for ``vonmises`` ``loc``, ``target_loc`` and ``target_concentration``. Returns a
    float64 tensor of shape (n,).
    """
    c = torch.full((n,), float(concentration), dtype=dtype, requires_grad=True)
    if family == "dirichlet":
        rest = torch.as_tensor(list(params["rest"]), dtype=dtype)
        p = Dirichlet(torch.as_tensor(list(params["target"]), dtype=dtype))
        q = Dirichlet(torch.cat([c[:, None], rest.expand(n, -1)], dim=-1))
    elif family == "vonmises":
        p = VonMises(
            torch.tensor(float(params["target_loc"]), dtype=dtype),
            torch.tensor(float(params["target_concentration"]), dtype=dtype),
        )
        q = VonMises(torch.full((n,), float(params["loc"]), dtype=dtype), c)
    else:
        raise ConfigError("families", f"choose from {', '.join(FAMILY_NAMES)}", family)
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
                    grads = single_sample_grads(
                        family, conc, make_estimator(name, B), n_samples, params, dtype
                    )
                    row.update(gradient_stats(grads, exact))
                rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


# -- the Gaussian example --------------------------------------------------------------------------
def _normal_moment(k: int) -> float:
    """E[eps^k] for eps ~ N(0, 1): 0 for odd k, (k - 1)!! for even k."""
    return 0.0 if k % 2 else float(np.prod(np.arange(k - 1, 0, -2))) if k else 1.0


def _central_moments(poly: np.polynomial.Polynomial) -> tuple[float, float, float]:
    """(mean, variance, fourth central moment) of poly(eps), eps ~ N(0, 1)."""
    expect = lambda p: sum(c * _normal_moment(k) for k, c in enumerate(p.coef))  # noqa: E731
    mean = expect(poly)
    centred = poly - mean
    return mean, expect(centred**2), expect(centred**4)


def gaussian_theory(theta: float) -> dict[str, tuple[float, float, float]]:
    """Per-sample (mean, variance, fourth central moment) of each estimator of d/dtheta E_{N(theta,1)}[z^2].

    pathwise: 2 (theta + eps); score: (theta + eps)^2 eps. Exact, from the moments of N(0, 1).
    """
    eps = np.polynomial.Polynomial([0.0, 1.0])
    return {
        "reparam": _central_moments(2.0 * (theta + eps)),
        "score": _central_moments((theta + eps) ** 2 * eps),
    }


def averaged_moments(sigma2: float, mu4: float, n: int) -> tuple[float, float]:
    """(variance, fourth central moment) of the average of n iid draws with variance sigma2 and mu4.

    E[(mean - mu)^4] = (n mu4 + 3 n (n - 1) sigma2^2) / n^4.
    """
    return sigma2 / n, (mu4 + 3.0 * (n - 1) * sigma2**2) / n**3


def sample_variance_std_error(sigma2: float, mu4: float, r: int) -> float:
    """Standard deviation of the unbiased sample variance of r iid draws:
    Var(s^2) = mu4 / r - sigma2^2 (r - 3) / (r (r - 1))."""
    return math.sqrt(mu4 / r - sigma2**2 * (r - 3) / (r * (r - 1)))


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
    est = make_estimator(estimator)
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


# -- config ----------------------------------------------------------------------------------------
def concentration_grid(node: Any, key: str) -> list[float]:
    """The concentrations of a family: ``<key>.concentrations`` (a list) if set, else ``<key>.grid``,
    ``{min, max, num}`` for ``num`` log-spaced values from min to max."""
    values = node.get("concentrations")
    if values is not None:
        values = OmegaConf.to_object(values) if isinstance(values, (ListConfig, DictConfig)) else values
        ok = (
            isinstance(values, list)
            and len(values) > 0
            and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                for v in values
            )
        )
        check(ok, f"{key}.concentrations", "null (use the grid) or a non-empty list of numbers > 0", values)
        return [float(v) for v in values]
    grid = node.get("grid")
    check(
        isinstance(grid, DictConfig) and set(grid) == {"min", "max", "num"},
        f"{key}.grid",
        "{min, max, num}",
        OmegaConf.to_object(grid) if isinstance(grid, DictConfig) else grid,
    )
    lo = _number(f"{key}.grid.min", grid.min, positive=True)
    hi = _number(f"{key}.grid.max", grid.max, positive=True)
    num = _positive_int(f"{key}.grid.num", grid.num)
    check(hi >= lo, f"{key}.grid.max", f"a number >= {key}.grid.min", hi)
    return [float(v) for v in np.logspace(math.log10(lo), math.log10(hi), num)] if num > 1 else [lo]


def _positive_int(key: str, value: Any) -> int:
    check(
        isinstance(value, int) and not isinstance(value, bool) and value >= 1, key, "an integer >= 1", value
    )
    return value


def _number(key: str, value: Any, positive: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    check(ok and (value > 0 or not positive), key, "a number > 0" if positive else "a finite number", value)
    return float(value)


def _list(cfg: DictConfig, key: str) -> list:
    value = OmegaConf.select(cfg, key)
    check(isinstance(value, ListConfig), key, "a list", value)
    return list(value)


def validate(cfg: DictConfig) -> dict[str, Any]:
    """Check the config and return plain settings; a bad value raises :class:`ConfigError` naming its key."""
    families = _list(cfg, "families")
    for family in families:
        check(family in FAMILY_NAMES, "families", f"choose from {', '.join(FAMILY_NAMES)}", family)
    estimators = _list(cfg, "estimators")
    check(len(estimators) > 0 or not families, "estimators", "a non-empty list", estimators)
    for name in estimators:
        check(name in ESTIMATOR_NAMES, "estimators", f"choose from {', '.join(ESTIMATOR_NAMES)}", name)
    rsvi_B = _list(cfg, "rsvi_B")
    for B in rsvi_B:
        check(isinstance(B, int) and not isinstance(B, bool) and B >= 0, "rsvi_B", "integers >= 0", B)
    check("rsvi" not in estimators or rsvi_B, "rsvi_B", "a non-empty list of integers >= 0", rsvi_B)
    check(cfg.dtype in DTYPES, "dtype", f"choose from {', '.join(DTYPES)}", cfg.dtype)
    seed = cfg.seed
    check(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0, "seed", "an integer >= 0", seed)
    n = cfg.n_samples
    check(
        isinstance(n, int) and not isinstance(n, bool) and n >= 2,
        "n_samples",
        "an integer >= 2 (a variance needs two samples)",
        n,
    )
    settings: dict[str, Any] = {
        "families": families,
        "estimators": estimators,
        "rsvi_B": rsvi_B,
        "seed": seed,
        "n_samples": n,
        "dtype": DTYPES[cfg.dtype],
        "plot": bool(cfg.plot),
        "grids": {},
        "params": {},
    }
    if "dirichlet" in families:
        d = cfg.dirichlet
        settings["grids"]["dirichlet"] = concentration_grid(d, "dirichlet")
        rest = [
            _number(f"dirichlet.rest[{i}]", v, positive=True)
            for i, v in enumerate(_list(cfg, "dirichlet.rest"))
        ]
        check(len(rest) >= 1, "dirichlet.rest", "at least one more concentration (K >= 2)", rest)
        target = [
            _number(f"dirichlet.target[{i}]", v, positive=True)
            for i, v in enumerate(_list(cfg, "dirichlet.target"))
        ]
        check(
            len(target) == len(rest) + 1,
            "dirichlet.target",
            f"{len(rest) + 1} concentrations (1 + len(rest))",
            target,
        )
        settings["params"]["dirichlet"] = {"rest": rest, "target": target}
    if "vonmises" in families:
        v = cfg.vonmises
        settings["grids"]["vonmises"] = concentration_grid(v, "vonmises")
        settings["params"]["vonmises"] = {
            "loc": _number("vonmises.loc", v.loc),
            "target_loc": _number("vonmises.target.loc", v.target.loc),
            "target_concentration": _number(
                "vonmises.target.concentration", v.target.concentration, positive=True
            ),
        }
    g = cfg.gaussian
    settings["gaussian"] = None
    if g is not None and g.enabled:
        ns = _list(cfg, "gaussian.n")
        check(len(ns) > 0, "gaussian.n", "a non-empty list of integers >= 1", ns)
        settings["gaussian"] = {
            "theta": _number("gaussian.theta", g.theta),
            "ns": [_positive_int("gaussian.n", n) for n in ns],
            "repetitions": _positive_int("gaussian.repetitions", g.repetitions),
        }
        check(g.repetitions >= 4, "gaussian.repetitions", "an integer >= 4", g.repetitions)
    return settings


# -- output ----------------------------------------------------------------------------------------
def estimator_label(estimator: str, B: float) -> str:
    return (
        f"rsvi B={int(B)}"
        if estimator == "rsvi" and not (isinstance(B, float) and math.isnan(B))
        else estimator
    )


#: Rows of the family plot: (column, y label). bias_z is bias / bias_se, on a linear scale (symmetric-log
#: beyond +-10 where some |bias_z| exceeds 30); the others on a log scale.
PANELS = [
    ("variance", "variance of a single-sample gradient"),
    ("bias_z", "bias / standard error (|.| < 4 shaded)"),
    ("mse", "mean squared error (variance + bias$^2$)"),
]


def plot_families(frame: pd.DataFrame, path: Path) -> None:
    """Against the concentration (log scale), one column of panels per family and one line per estimator
    (and B): the variance, the bias in standard errors and the MSE (rows :data:`PANELS`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = frame.assign(bias_z=bias_in_standard_errors(frame))
    families = list(dict.fromkeys(frame["family"]))
    fig, axes = plt.subplots(
        len(PANELS), len(families), figsize=(5.5 * len(families), 3.6 * len(PANELS)), squeeze=False
    )
    xlabels = {"dirichlet": r"concentration $\alpha_1$", "vonmises": r"concentration $\kappa$"}
    for column, family in zip(axes.T, families, strict=True):
        sub = frame[frame["family"] == family]
        labels = pd.Series(
            [estimator_label(e, b) for e, b in zip(sub["estimator"], sub["B"], strict=True)], index=sub.index
        )
        for ax, (value, ylabel) in zip(column, PANELS, strict=True):
            for label in dict.fromkeys(labels):
                line = sub[labels == label].dropna(subset=[value]).sort_values("concentration")
                ax.plot(line["concentration"], line[value], marker="o", ms=3, label=label)
            ax.set_xscale("log")
            if value != "bias_z":
                ax.set_yscale("log")
            else:
                ax.axhspan(-4.0, 4.0, color="0.9", zorder=0)
                lo, hi = ax.get_ylim()
                ax.set_ylim(min(lo, -8.0), max(hi, 8.0))
                if sub[value].abs().max() > 30:
                    ax.set_yscale("symlog", linthresh=10.0)
            ax.set_title(family)
            ax.set_xlabel(xlabels.get(family, "concentration"))
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
        column[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_gaussian(frame: pd.DataFrame, path: Path) -> None:
    """Log-log variance vs N of the N-sample average, measured (markers) and theory (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for name, sub in frame.groupby("estimator", sort=False):
        (line,) = ax.loglog(sub["N"], sub["variance"], marker="o", label=f"{name} (measured)")
        ax.loglog(sub["N"], sub["theory_variance"], ls="--", color=line.get_color(), label=f"{name} (theory)")
    ax.set_xlabel("N (samples averaged)")
    ax.set_ylabel("variance over repetitions")
    ax.set_title(r"$\nabla_\theta E_{N(\theta,1)}[z^2]$")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def family_table(frame: pd.DataFrame, value: str = "variance") -> str:
    """One column as compact text tables, one per family: a row per concentration, a column per estimator.
    ``value`` is a column of the frame or ``bias_z`` (bias / bias_se)."""
    frame = frame.assign(
        label=[estimator_label(e, b) for e, b in zip(frame["estimator"], frame["B"], strict=True)],
        bias_z=bias_in_standard_errors(frame),
    )
    parts = []
    for family, sub in frame.groupby("family", sort=False):
        table = sub.pivot_table(
            index="concentration", columns="label", values=value, sort=False, dropna=False
        )
        table = table[list(dict.fromkeys(sub["label"]))].sort_index()
        table.insert(0, "exact grad", sub.groupby("concentration")["exact"].first())
        table.index = [f"{c:.4g}" for c in table.index]
        table.index.name = f"{family}: concentration"
        table.columns.name = None
        parts.append(table.to_string(float_format=lambda v: f"{v:.3g}", na_rep="-"))
    return "\n\n".join(parts)


def gaussian_table(frame: pd.DataFrame) -> str:
    return frame.drop(columns=["repetitions"]).to_string(index=False, float_format=lambda v: f"{v:.4g}")


def run(cfg: DictConfig, out_dir: Path) -> dict[str, Path]:
    """Validate ``cfg``, run the experiments, write the files into ``out_dir``; return the written paths."""
    s = validate(cfg)
    torch.manual_seed(s["seed"])
    written: dict[str, Path] = {}
    if s["families"]:
        frames = []
        for family in s["families"]:
            log.info("family %s: concentrations %s", family, s["grids"][family])
            frames.append(
                family_experiment(
                    family,
                    s["grids"][family],
                    s["params"][family],
                    s["estimators"],
                    s["rsvi_B"],
                    s["n_samples"],
                    s["seed"],
                    s["dtype"],
                )
            )
        frame = pd.concat(frames, ignore_index=True)
        written["variance.csv"] = out_dir / "variance.csv"
        frame.to_csv(written["variance.csv"], index=False)
        text = "\n\n".join(
            f"{title}:\n{family_table(frame, value)}"
            for value, title in (
                ("variance", "Variance"),
                ("bias_z", "Bias in standard errors (|bias| / bias_se > 4: biased)"),
                ("mse", "Mean squared error"),
            )
        )
        print(
            f"Single-sample gradients d/d(concentration) E_q[-log p(z)], {s['n_samples']} samples each.\n"
            f"{text}\n"
        )
        log.info("variance table:\n%s", text)
        if s["plot"]:
            written["variance.png"] = out_dir / "variance.png"
            plot_families(frame, written["variance.png"])
    if s["gaussian"]:
        g = s["gaussian"]
        frame = gaussian_experiment(g["theta"], g["ns"], g["repetitions"], s["seed"], s["dtype"])
        written["gaussian.csv"] = out_dir / "gaussian.csv"
        frame.to_csv(written["gaussian.csv"], index=False)
        text = gaussian_table(frame)
        print(
            f"d/dtheta E_N(theta,1)[z^2] at theta = {g['theta']:g} (exact {2 * g['theta']:g}), average of N "
            f"single-sample estimates, {g['repetitions']} repetitions:\n{text}\n"
        )
        log.info("gaussian table:\n%s", text)
        if s["plot"]:
            written["gaussian.png"] = out_dir / "gaussian.png"
            plot_gaussian(frame, written["gaussian.png"])
    return written


def task(cfg: DictConfig) -> None:
    """The Hydra task of `vae-lab variance`: an error is one console line (its traceback in variance.log)."""
    from hydra.core.hydra_config import HydraConfig

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        written = run(cfg, out_dir)
    except ConfigError as err:
        log.info("configuration error: %s", err)  # INFO: to variance.log only, the console gets one line
        print(f"vae-lab variance: error: {err}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:  # noqa: BLE001 - one line on the console, the traceback in variance.log
        log.info("variance experiment failed: %s\n%s", err, traceback.format_exc())  # to variance.log only
        print(
            f"vae-lab variance: error: {type(err).__name__}: {err} (traceback in {out_dir / 'variance.log'})",
            file=sys.stderr,
        )
        sys.exit(1)
    names = ", ".join(written) or "nothing (no families and gaussian.enabled=false)"
    print(f"wrote {names} to {out_dir}")
