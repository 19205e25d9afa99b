"""The experiments (vae_lab/variance/experiment.py): every estimator unbiased on the family
cross-entropies, the columns consistent, RSVI without shape augmentation skipped below one, the paper's
claim on implicit gradients, and the Gaussian table against theory."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from vae_lab.config import CONF_DIR
from vae_lab.errors import ConfigError
from vae_lab.estimators import ImplicitEstimator, RSVIEstimator, ScoreFunctionEstimator
from vae_lab.variance import (
    COLUMNS,
    averaged_moments,
    build_estimator,
    family_experiment,
    gaussian_experiment,
    gaussian_theory,
    sample_variance_std_error,
    supported_estimators,
)
from vae_lab.variance.stats import bias_in_standard_errors

DIRICHLET = {"rest": [1.0, 1.0], "target": [2.0, 3.0, 4.0]}
VONMISES = {"loc": 0.0, "target_loc": 0.5, "target_concentration": 2.0}


@pytest.fixture(scope="module")
def small_tables() -> dict[str, pd.DataFrame]:
    return {
        "dirichlet": family_experiment("dirichlet", [0.3, 2.5], DIRICHLET, n_samples=20_000, seed=1),
        "vonmises": family_experiment("vonmises", [0.5, 20.0], VONMISES, n_samples=20_000, seed=1),
    }


@pytest.mark.parametrize("family", ["dirichlet", "vonmises"])
def test_every_estimator_mean_is_within_4_standard_errors_of_the_exact_gradient(small_tables, family):
    table = small_tables[family]
    assert list(table.columns) == COLUMNS
    valid = table[table["note"] == ""]
    assert len(valid) == (11 if family == "dirichlet" else 6)  # dirichlet: B=0 is skipped at alpha_1 = 0.3
    z = bias_in_standard_errors(valid).abs()
    assert (z < 4).all(), valid.assign(z=z).to_string()


@pytest.mark.parametrize("family", ["dirichlet", "vonmises"])
def test_bias_and_mse_columns_are_consistent_with_mean_and_variance(small_tables, family):
    """bias = mean - exact with the mean's standard error; mse = (1/M) sum (g - exact)^2, which is
    (M - 1)/M variance + bias^2 exactly, and so var + bias^2 up to var / M."""
    valid = small_tables[family][small_tables[family]["note"] == ""]
    m = valid["n_samples"]
    np.testing.assert_allclose(valid["bias"], valid["mean"] - valid["exact"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(valid["bias_se"], valid["std_error"], rtol=1e-12)
    np.testing.assert_allclose(valid["mse"], (m - 1) / m * valid["variance"] + valid["bias"] ** 2, rtol=1e-9)
    np.testing.assert_allclose(valid["mse"], valid["variance"] + valid["bias"] ** 2, rtol=2 / m.min())
    skipped = small_tables[family][small_tables[family]["note"] != ""]
    assert skipped[["bias", "bias_se", "mse"]].isna().all().all()


def test_rsvi_without_shape_augmentation_is_skipped_below_one(small_tables):
    table = small_tables["dirichlet"]
    skipped = table[table["note"] != ""]
    assert skipped[["concentration", "estimator", "B"]].values.tolist() == [[0.3, "rsvi", 0.0]]
    assert skipped[["mean", "variance", "std_error", "bias", "bias_se", "mse"]].isna().all().all()


def test_implicit_has_the_lowest_variance_away_from_small_concentrations(small_tables):
    # The paper's claim (Figurnov et al., 2018, Figure 2): implicit gradients have lower variance than RSVI
    # and the score function. von Mises at kappa = 20: a clear gap (ratio 1.5 or more; the variance
    # estimates with M = 20,000 are good to a few percent, so a 25% margin is many standard errors). Near
    # kappa = 0.1-0.3 RSVI's von Mises variance is lower than implicit's: not claimed here. Dirichlet at
    # alpha_1 = 2.5, implicit gradients through normalized Gamma variates (as in the paper's code): RSVI is
    # only 3-15% higher there, so the claim is "not higher", within 4 standard errors of the difference
    # (each variance estimate has a relative standard error of about sqrt(2 / M)).
    for family, conc, margin in (("dirichlet", 2.5, None), ("vonmises", 20.0, 1.25)):
        rows = small_tables[family][small_tables[family]["concentration"] == conc].set_index(
            ["estimator", "B"]
        )
        implicit = rows["variance"].xs("implicit", level="estimator").iloc[0]
        others = rows["variance"].drop("implicit", level="estimator")
        if margin is None:
            rel_se = math.sqrt(2.0 / rows["n_samples"].iloc[0])
            se_diff = rel_se * (others**2 + implicit**2) ** 0.5
            assert (others - implicit > -4 * se_diff).all(), rows.to_string()
        else:
            assert (others > margin * implicit).all(), rows.to_string()


@pytest.fixture(scope="module")
def gaussian_table() -> pd.DataFrame:
    # the full grid (N up to 1e5, 100 repetitions: 1.1e7 samples per estimator) takes about a second
    return gaussian_experiment(theta=2.0, ns=[10, 100, 1000, 10_000, 100_000], repetitions=100, seed=0)


def test_gaussian_variances_agree_with_theory(gaussian_table):
    # The sample variance s^2 of R iid estimates has Var(s^2) = mu4/R - sigma^4 (R - 3)/(R (R - 1)).
    # mu4 is that of the N-sample average, computed exactly (not estimated from the data): the single-
    # sample fourth moment comes from the moments of N(0, 1), and averaging N iid terms gives
    # mu4_N = (mu4 + 3 (N - 1) sigma^4) / N^3. For the score function the single-sample kurtosis is
    # about 27, so at N = 10 the relative standard error of s^2 is about 21%, not sqrt(2/(R-1)) = 14%.
    table = gaussian_table
    assert set(table["estimator"]) == {"score", "reparam"}
    theory = gaussian_theory(2.0)
    for row in table.itertuples():
        _, sigma2, mu4 = theory[row.estimator]
        var_n, mu4_n = averaged_moments(sigma2, mu4, row.N)
        assert row.theory_variance == pytest.approx(var_n)
        se = sample_variance_std_error(var_n, mu4_n, row.repetitions)
        assert row.variance_std_error == pytest.approx(se)
        assert abs(row.variance - var_n) < 4 * se, row
        assert abs(row.mean - 4.0) < 4 * math.sqrt(var_n / row.repetitions), row
        assert row.bias == pytest.approx(row.mean - 4.0) and abs(row.bias) < 4 * row.bias_se, row
        r = row.repetitions
        assert row.mse == pytest.approx((r - 1) / r * row.variance + row.bias**2), row
    # the scaling the lecture shows: pathwise 4/N, score 87/N
    assert table.loc[table["estimator"] == "reparam", "theory_variance"].tolist() == pytest.approx(
        [4 / n for n in (10, 100, 1000, 10_000, 100_000)]
    )
    assert table.loc[table["estimator"] == "score", "theory_variance"].tolist() == pytest.approx(
        [87 / n for n in (10, 100, 1000, 10_000, 100_000)]
    )


# -- estimators from their configs ------------------------------------------------------------------
def test_estimators_are_built_from_their_configs_with_the_experiments_overrides():
    rsvi_yaml = OmegaConf.load(CONF_DIR / "estimator" / "rsvi.yaml")
    rsvi = build_estimator("rsvi")
    assert isinstance(rsvi, RSVIEstimator) and (rsvi.B, rsvi.correction) == (
        rsvi_yaml.B,
        rsvi_yaml.correction,
    )
    assert build_estimator("rsvi", B=3).B == 3  # the Dirichlet rows' shape augmentation
    score = build_estimator("score")  # the paper's plain score function, whatever score.yaml's baseline
    assert isinstance(score, ScoreFunctionEstimator) and score.baseline == "none"
    assert isinstance(build_estimator("implicit"), ImplicitEstimator)
    with pytest.raises(ConfigError, match=r"^estimators='nope' is not allowed; choose from .*implicit"):
        build_estimator("nope")


def test_which_estimators_apply_is_asked_of_the_distribution():
    for family in ("dirichlet", "vonmises"):
        supported = supported_estimators(family)
        assert {"implicit", "rsvi", "score"} <= set(supported) and "reparam" not in supported, family
