"""The gradient-variance probe: its statistics against closed forms, its effect on training (none), and
its columns in a real run's metrics.csv."""

from __future__ import annotations

import functools
import logging
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from pytorch_lightning.plugins.precision import Precision
from torch import Tensor
from torch.distributions import Normal

from vae_lab.errors import ConfigError
from vae_lab.estimators import ImplicitEstimator, ReparamEstimator, ScoreFunctionEstimator
from vae_lab.model.likelihoods import Bernoulli
from vae_lab.model.networks import MLP
from vae_lab.model.posteriors import GaussianHead
from vae_lab.model.priors import NormalPrior
from vae_lab.model.vae import VAE
from vae_lab.probes import GradientVarianceProbe, gradient_moments, parameter_groups
from vae_lab.seeds import derived_seed
from vae_lab.variance import gaussian_theory, sample_variance_std_error

P, M = 4000, 20  # coordinates (independent copies of the toy) and estimates per measurement
ESTIMATORS = {"reparam": ImplicitEstimator, "score": lambda: ScoreFunctionEstimator(baseline="none")}


def toy(name: str, theta: float):
    """P independent copies of d/dmu E_{N(mu, 1)}[z^2] at mu = theta, through vae-lab's estimators.

    Per coordinate the implicit (= pathwise) gradient is 2z, variance 4; the score function's is
    z^2 (z - theta), variance theta^4 + 14 theta^2 + 15 (vae_lab.variance.gaussian_theory)."""
    mu = torch.full((P,), theta, dtype=torch.float64, requires_grad=True)
    estimator = ESTIMATORS[name]()

    def loss():
        return estimator(Normal(mu, torch.ones((), dtype=torch.float64)), lambda z: z * z).surrogate.sum()

    return loss, {"mu": [mu]}


@pytest.mark.parametrize("name", ["reparam", "score"])
def test_variance_matches_the_exact_variance_within_its_standard_error(name):
    theta = 1.5
    torch.manual_seed(0)
    loss, groups = toy(name, theta)
    moments = gradient_moments(loss, groups, M)["mu"]
    exact_mean, exact_var, mu4 = gaussian_theory(theta)[name]
    # the average over P independent coordinates of the unbiased sample variance of M draws
    se_var = sample_variance_std_error(exact_var, mu4, M) / math.sqrt(P)
    se_mean = math.sqrt(exact_var / (M * P))
    assert abs(moments.variance - exact_var) < 4 * se_var, (moments.variance, exact_var, se_var)
    assert abs(float(moments.mean.mean()) - exact_mean) < 4 * se_mean
    assert se_var < 0.05 * exact_var  # resolved to a few percent: the check has teeth
    assert moments.mean.dtype == torch.float64 and moments.var.shape == (P,)


def test_the_score_function_variance_is_told_apart_from_the_pathwise_one():
    torch.manual_seed(1)
    var = {name: gradient_moments(*toy(name, 1.5), M)["mu"].variance for name in ESTIMATORS}
    assert var["score"] > 10 * var["reparam"]  # 51.3 vs 4 exactly


def test_snr_is_the_debiased_signal_to_noise_ratio_of_the_gradient_vector():
    """Score function at theta = 0.3: exact SNR^2 = ||E g||^2 / tr Cov g = (2 theta)^2 / (theta^4 + 14 theta^2
    + 15); the uncorrected ||mean||^2 / sum s^2 would be about 1/M higher, many standard errors away."""
    theta, repeats = 0.3, 30
    _, exact_var, _ = gaussian_theory(theta)["score"]
    exact = (2 * theta) ** 2 / exact_var
    torch.manual_seed(2)
    snr2, naive = [], []
    for _ in range(repeats):
        m = gradient_moments(*toy("score", theta), M)["mu"]
        snr2.append(m.snr**2)
        naive.append(float(m.mean.square().sum() / m.var.sum()))
    snr2, naive = np.array(snr2), np.array(naive)
    se = snr2.std(ddof=1) / math.sqrt(repeats)
    assert abs(snr2.mean() - exact) < 4 * se, (snr2.mean(), exact, se)
    assert abs(naive.mean() - exact) > 10 * se  # the 1/M correction matters at this SNR


def test_zero_variance_and_unused_parameters():
    a = torch.ones(3, requires_grad=True)
    unused = torch.ones(2, requires_grad=True)
    moments = gradient_moments(lambda: (2 * a).sum(), {"a": [a], "unused": [unused], "empty": []}, 3)
    assert set(moments) == {"a", "unused"}
    assert moments["a"].variance == 0 and moments["a"].snr == math.inf
    assert moments["unused"].variance == 0 and math.isnan(moments["unused"].snr)
    with pytest.raises(ConfigError):
        gradient_moments(lambda: a.sum(), {"a": [a]}, 1)


# -- the callback, in process ------------------------------------------------------------------------
def small_vae(estimator) -> VAE:
    torch.manual_seed(0)
    return VAE(
        posterior=GaussianHead(3),
        prior=NormalPrior(3),
        estimator=estimator,
        encoder=functools.partial(MLP, hidden=[16]),
        decoder=functools.partial(MLP, hidden=[16]),
        likelihood=Bernoulli(),
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        input_dim=8,
        latent_dim=3,
    )


def fake_trainer(step: int) -> SimpleNamespace:
    return SimpleNamespace(
        global_step=step,
        current_epoch=0,
        datamodule=None,
        precision_plugin=Precision(),
        loggers=[],
        is_global_zero=True,
    )


def test_a_measurement_leaves_random_state_estimator_state_modes_and_grads_alone():
    model = small_vae(ScoreFunctionEstimator(baseline="moving_average"))
    model.train()
    x = torch.bernoulli(torch.full((50, 8), 0.4))
    model.estimator.baseline_value.fill_(-3.0)
    model.estimator.baseline_steps.fill_(7)
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    probe = GradientVarianceProbe(
        every_n_steps=1, n_estimates=4, batch_size=20, compare=["implicit", "score"]
    )
    probe.setup(fake_trainer(0), model, "fit")
    rng = torch.get_rng_state()
    first = probe.measure(fake_trainer(3), model, x)
    assert torch.equal(torch.get_rng_state(), rng)
    assert model.estimator.baseline_value.item() == -3.0 and model.estimator.baseline_steps.item() == 7
    assert all(m.training for m in model.modules())
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in model.parameters())
    expected = {"grad/var/encoder", "grad/snr/decoder", "grad/var/encoder/implicit", "grad/snr/decoder/score"}
    assert expected <= set(first)
    assert all(math.isfinite(v) for v in first.values())
    # the probe's own stream is seeded by (seed, step): the same step gives the same numbers
    assert probe.measure(fake_trainer(3), model, x) == first
    assert probe.measure(fake_trainer(4), model, x) != first
    # score (with a baseline) is noisier for the encoder than implicit reparameterization
    assert first["grad/var/encoder"] > first["grad/var/encoder/implicit"]


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")  # training_step without a Trainer
@pytest.mark.parametrize("analytic_kl", [True, False])
def test_during_kl_warmup_the_probe_measures_the_gradient_of_the_training_step(analytic_kl, monkeypatch):
    """At step 30 of a 100-step KL warm-up (beta = 0.3) the probe's mean gradient, for the run's estimator
    and for a compared one, is the mean of the gradients of ``training_step`` drawn with the same random
    numbers, to rounding; the ELBO's gradient (beta = 1, what the probe used to differentiate) is far off."""
    n, step = 6, 30
    model = small_vae(ReparamEstimator())
    model.analytic_kl = analytic_kl
    model.kl_warmup_steps = 100
    monkeypatch.setattr(VAE, "global_step", property(lambda self: step))
    assert model.kl_weight() == pytest.approx(0.3)
    x = torch.bernoulli(torch.full((40, 8), 0.4), generator=torch.Generator().manual_seed(0))
    probe = GradientVarianceProbe(
        every_n_steps=1, n_estimates=n, batch_size=len(x), compare=["implicit"], seed=3
    )
    probe.setup(fake_trainer(0), model, "fit")
    measured = probe.moments(fake_trainer(step), model, x)
    encoder = parameter_groups(model)["encoder"]

    def mean_training_gradient(estimator, index: int) -> Tensor:
        own, model.estimator = model.estimator, estimator
        torch.manual_seed(derived_seed(probe.seed, step, index))
        grads = [torch.autograd.grad(model.training_step(x, 0), encoder) for _ in range(n)]
        model.estimator = own
        return torch.stack([torch.cat([g.reshape(-1) for g in gs]) for gs in grads]).double().mean(0)

    implicit = probe._estimators["implicit"][0]
    for suffix, estimator, index in (("", model.estimator, 0), ("/implicit", implicit, 1)):
        expected = mean_training_gradient(estimator, index)
        torch.testing.assert_close(measured[suffix]["encoder"].mean, expected, rtol=1e-12, atol=1e-12)
        model.kl_warmup_steps = 0  # beta = 1: the untempered ELBO
        elbo_gradient = mean_training_gradient(estimator, index)
        model.kl_warmup_steps = 100
        # about 2.3 times the norm here: the KL's pull dominates this untrained encoder's gradient
        assert (elbo_gradient - expected).norm() > 0.5 * expected.norm(), suffix


def test_unsupported_compare_estimators_are_skipped_with_one_warning(caplog):
    model = small_vae(ImplicitEstimator())
    probe = GradientVarianceProbe(compare=["rsvi", "score"])
    with caplog.at_level(logging.WARNING):
        probe.setup(fake_trainer(0), model, "fit")
    assert list(probe._estimators) == ["score"]
    assert [r.getMessage() for r in caplog.records if "rsvi" in r.getMessage()] != []


def test_bad_settings_are_config_errors():
    for kwargs, key in [
        ({"compare": ["nope"]}, "compare"),
        ({"n_estimates": 1}, "n_estimates"),
        ({"every_n_steps": 0}, "every_n_steps"),
    ]:
        with pytest.raises(ConfigError) as err:
            GradientVarianceProbe(**kwargs)
        assert err.value.key == key


def test_parameter_groups_follow_the_model_parts():
    from vae_lab.model.posteriors import DirichletHead
    from vae_lab.model.priors import DirichletPrior

    model = VAE(
        posterior=DirichletHead(3),
        prior=DirichletPrior(3, learnable=True),
        estimator=ImplicitEstimator(),
        encoder=functools.partial(MLP, hidden=[4]),
        decoder=functools.partial(MLP, hidden=[4]),
        likelihood=Bernoulli(),
        optimizer=functools.partial(torch.optim.Adam),
        input_dim=5,
        latent_dim=3,
    )
    groups = parameter_groups(model)
    assert list(groups) == ["encoder", "decoder", "prior"]
    assert sum(p.numel() for g in groups.values() for p in g) == sum(p.numel() for p in model.parameters())
    assert groups["prior"] == [model.prior.raw_alpha]


# -- end to end ---------------------------------------------------------------------------------------
def run_dir(root: Path) -> Path:
    (summary,) = root.glob("outputs/*/*/summary.json")
    return summary.parent


def test_a_run_logs_the_probe_and_is_unchanged_by_it(cli, tmp_path):
    """The same short run (score function with a moving-average baseline, so the estimator has state)
    with the probe measuring every step and without it: metrics.csv is identical, bit for bit, apart from
    the grad/ columns, and so are the final weights and the estimator's baseline."""
    common = ["+debug=fast", "estimator=score", "trainer.limit_train_batches=6", "test=false"]
    probe = ["every_n_steps=1", "n_estimates=3", "batch_size=50", "compare=[implicit,score]"]
    on = cli("train", *common, *(f"callbacks.grad_variance.{o}" for o in probe))
    assert on.returncode == 0, on.stderr[-3000:]
    (cli.cwd / "outputs").rename(tmp_path / "probed")
    (probed,) = [p.parent for p in (tmp_path / "probed").glob("*/*/summary.json")]
    off = cli("train", *common, "callbacks.grad_variance.enabled=false")
    assert off.returncode == 0, off.stderr[-3000:]
    plain = run_dir(cli.cwd)

    frame = pd.read_csv(probed / "metrics.csv")
    for group in ("encoder", "decoder"):
        for suffix in ("", "/implicit", "/score"):
            for stat in ("var", "snr"):
                values = frame[f"grad/{stat}/{group}{suffix}"].dropna()
                assert len(values) == 6 and values.map(math.isfinite).all(), (stat, group, suffix)
    assert (frame.dropna(subset=["grad/var/encoder"])["step"] == list(range(1, 7))).all()
    assert not any(c.startswith("grad/") for c in pd.read_csv(plain / "metrics.csv").columns)

    def without_probe(path: Path) -> pd.DataFrame:
        text = pd.read_csv(path / "metrics.csv", dtype=str, keep_default_na=False)
        text = text[[c for c in text.columns if not c.startswith("grad/")]]
        keep = text.drop(columns=["epoch", "step"]).ne("").any(axis=1)
        return text[keep].reset_index(drop=True)

    pd.testing.assert_frame_equal(without_probe(probed), without_probe(plain))
    weights = [
        torch.load(d / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
        for d in (probed, plain)
    ]
    assert weights[0].keys() == weights[1].keys() and "estimator.baseline_value" in weights[0]
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key
