"""ScoreFunctionEstimator: REINFORCE (Williams, 1992) with baselines."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Independent

from vae_lab.errors import ConfigError
from vae_lab.estimators import ScoreFunctionEstimator

from .estimator_cases import CASES, N_COPIES, assert_unbiased, per_copy_gradients

FAMILIES_ = ["gaussian", "gamma", "dirichlet", "beta", "vonmises"]


@pytest.mark.parametrize("family", FAMILIES_)
@pytest.mark.parametrize("baseline", ["none", "moving_average", "leave_one_out"])
def test_unbiased(family, baseline):
    """Mean of 1e5 single-sample gradients within 4 standard errors of the exact gradient.

    leave_one_out: 25 000 data points with 4 samples each (1e5 samples); the standard error is over the
    data points, whose per-point gradients are independent. moving_average: one training-mode call
    first, so that the measured call uses a non-zero baseline from other samples.
    """
    torch.manual_seed(0)
    est = ScoreFunctionEstimator(baseline=baseline)
    if baseline == "leave_one_out":
        case = CASES[family](N_COPIES // 4)
        grads = per_copy_gradients(est, case, n_samples=4)
    else:
        case = CASES[family](N_COPIES)
        if baseline == "moving_average":
            est(case.make_q(case.params), case.f)
            assert est.baseline_steps.item() == 1 and est.baseline_value.item() != 0.0
        grads = per_copy_gradients(est, case)
    assert_unbiased(grads, case.exact)


@pytest.mark.parametrize("baseline", ["none", "moving_average", "leave_one_out"])
@pytest.mark.parametrize("family", FAMILIES_)
def test_surrogate_value_is_f(family, baseline):
    torch.manual_seed(0)
    case = CASES[family](16)
    est = ScoreFunctionEstimator(baseline=baseline)
    for _ in range(2):  # the second call uses a moving-average baseline
        out = est(case.make_q(case.params), case.f, n_samples=3)
        assert out.surrogate.shape == (3, 16)
        assert torch.equal(out.surrogate, case.f(out.z))
        assert not out.z.requires_grad


def test_leave_one_out_needs_two_samples():
    case = CASES["gaussian"](4)
    with pytest.raises(ValueError, match="leave_one_out baseline needs n_samples >= 2"):
        ScoreFunctionEstimator(baseline="leave_one_out")(case.make_q(case.params), case.f, n_samples=1)


def test_unknown_baseline_and_bad_decay():
    with pytest.raises(ConfigError, match=r"baseline='mean' is not allowed; expected one of none"):
        ScoreFunctionEstimator(baseline="mean")
    with pytest.raises(ValueError, match="decay"):
        ScoreFunctionEstimator(baseline="moving_average", decay=1.0)


def test_leave_one_out_baseline_is_the_mean_of_the_others():
    """With f = const + score-only dependence, the gradient is sum_s (f_s - b_s) d log q(z_s) / S."""
    torch.manual_seed(0)
    loc = torch.zeros(2, 1, requires_grad=True)
    q = Independent(torch.distributions.Normal(loc, 1.0), 1)
    out = ScoreFunctionEstimator(baseline="leave_one_out")(q, lambda z: z.sum(-1) ** 2, n_samples=3)
    (g,) = torch.autograd.grad(out.surrogate.mean(0).sum(), loc)
    f = out.value.detach()
    b = (f.sum(0, keepdim=True) - f) / 2
    expected = ((f - b) * out.z.squeeze(-1)).mean(0)  # d log N(z; loc, 1) / d loc = z - loc
    torch.testing.assert_close(g.squeeze(-1), expected)


def test_moving_average_updates_in_training_only_and_is_saved():
    torch.manual_seed(0)
    case = CASES["gaussian"](1000)
    q = case.make_q(case.params)
    est = ScoreFunctionEstimator(baseline="moving_average", decay=0.5)
    out1 = est(q, case.f)
    first = out1.value.detach().mean()
    assert est.baseline_value.item() == pytest.approx(first.item(), rel=1e-6)  # initialized, not 0.5 * mean
    out2 = est(q, case.f)
    expected = 0.5 * first + 0.5 * out2.value.detach().mean()
    assert est.baseline_value.item() == pytest.approx(expected.item(), rel=1e-6)
    est.eval()
    before = est.baseline_value.clone()
    est(q, case.f)
    assert torch.equal(est.baseline_value, before) and est.baseline_steps.item() == 2
    state = est.state_dict()
    assert set(state) == {"baseline_value", "baseline_steps"}
    other = ScoreFunctionEstimator(baseline="moving_average")
    other.load_state_dict(state)
    assert torch.equal(other.baseline_value, est.baseline_value)
