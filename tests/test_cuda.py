"""On a CUDA device: the von Mises sampler and its gradient, every estimator, the model, the data, a short
training run with ``trainer=gpu`` and `vae-lab eval` of it.

Skipped, with the reason, where torch sees no CUDA device. ``benchmarks/gpu_check.py`` runs this module
and prints one row per check (status, seconds, and the ``detail`` each test records: KS p-values,
relative errors, z-scores). The references are the CPU and float64 paths, themselves checked against
scipy and mpmath in tests/distributions; the statistical checks use fixed seeds and 4 standard errors, as
on the CPU. (On a CPU, tests/*/test_*_device.py check that every tensor follows its inputs' device.)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import scipy.stats as st
import torch
from conftest import run_cli, tiny_vae
from estimators.estimator_cases import CASES, N_COPIES, Case, per_copy_gradients, z_scores

from vae_lab.data import DigitsDataModule
from vae_lab.data.loader import TensorBatches, bernoulli_transform
from vae_lab.distributions import VonMises
from vae_lab.distributions.rsvi import rsvi_sample
from vae_lab.distributions.von_mises_cdf import von_mises_dz_dconcentration
from vae_lab.estimators import ImplicitEstimator, ReparamEstimator, RSVIEstimator, ScoreFunctionEstimator
from vae_lab.model.posteriors import BetaHead, DirichletHead, GammaHead, GaussianHead, VonMisesHead
from vae_lab.model.priors import (
    CircularUniformPrior,
    DirichletPrior,
    GammaPrior,
    NormalPrior,
    UnitUniformPrior,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")

CUDA = "cuda"
DTYPES = [pytest.param(torch.float32, id="float32"), pytest.param(torch.float64, id="float64")]
P_MIN = 1e-3  # KS p-value floor, as in tests/distributions/test_von_mises.py


# -- the von Mises sampler and its gradient -------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kappa", [1e-3, 1.0, 10.0, 1e3, 1e6])
def test_von_mises_samples_on_cuda_fit_the_distribution(kappa, dtype, record_property):
    """1e5 draws on the GPU, KS p > 1e-3 against scipy's CDF (kappa = 1e6: sqrt(kappa) z against N(0, 1),
    as the CPU test does)."""
    torch.manual_seed(2024)
    q = VonMises(torch.zeros((), dtype=dtype, device=CUDA), torch.tensor(kappa, dtype=dtype, device=CUDA))
    z = q.sample((100_000,))
    assert z.device.type == "cuda" and z.dtype == dtype
    assert bool(((z >= -math.pi) & (z < math.pi)).all())
    zs = z.double().cpu().numpy()
    if kappa >= 1e6:
        p_value = st.kstest(zs * math.sqrt(kappa), "norm").pvalue
    else:
        p_value = st.kstest(zs, lambda v: st.vonmises.cdf(v, kappa)).pvalue
    record_property("detail", f"KS p = {p_value:.3g}")
    assert p_value > P_MIN


@pytest.mark.parametrize("dtype", DTYPES)
def test_rsvi_von_mises_proposal_on_cuda_with_a_cuda_generator(dtype, record_property):
    """RSVI's Best-Fisher draws from a generator on the device (a CPU one could not draw there)."""
    kappa = 5.0
    generator = torch.Generator(device=CUDA).manual_seed(7)
    q = VonMises(torch.zeros((), dtype=dtype, device=CUDA), torch.tensor(kappa, dtype=dtype, device=CUDA))
    s = rsvi_sample(q, (100_000,), generator=generator)
    assert s.z.device.type == "cuda" and s.z.dtype == dtype and s.log_ratio.dtype == dtype
    p_value = st.kstest(s.z.double().cpu().numpy(), lambda v: st.vonmises.cdf(v, kappa)).pvalue
    record_property("detail", f"KS p = {p_value:.3g}")
    assert p_value > P_MIN


GRADIENT_KAPPAS = [
    1e-6,
    1e-3,
    0.1,
    0.49,
    0.51,
    1.0,
    2.9,
    3.1,
    5.0,
    10.4,
    10.6,
    20.0,
    49.0,
    51.0,
    1e3,
    1e4,
    1e6,
]


@pytest.mark.parametrize("dtype", DTYPES)
def test_von_mises_gradient_on_cuda_matches_the_cpu_float64_reference(dtype, record_property):
    """dz/dkappa of 20,000 GPU rsample draws at each of 17 concentrations (both sides of every switch),
    by backpropagation on the GPU, against ``von_mises_dz_dconcentration`` in float64 on the CPU at the
    same x. float32: relative error below 1e-4 for 99.9% of the draws at every concentration (the CPU's
    own float32 criterion, tests/distributions/test_von_mises_cdf.py); float64: the same algorithm in the
    same precision, below 1e-9 everywhere."""
    torch.manual_seed(3)
    n = 20_000
    kappa = torch.tensor(GRADIENT_KAPPAS, dtype=dtype, device=CUDA).repeat_interleave(n).requires_grad_()
    z = VonMises(torch.zeros((), dtype=dtype, device=CUDA), kappa).rsample()  # loc 0: z is the centred x
    (grad,) = torch.autograd.grad(z.sum(), [kappa])
    assert grad.device.type == "cuda" and grad.dtype == dtype and bool(torch.isfinite(grad).all())
    ref = von_mises_dz_dconcentration(z.detach().double().cpu(), kappa.detach().double().cpu())
    rel = ((grad.double().cpu() - ref).abs() / ref.abs()).nan_to_num(0.0).view(len(GRADIENT_KAPPAS), n)
    q999 = torch.quantile(rel, 0.999, dim=1)
    record_property("detail", f"max rel err {rel.max():.2e}, worst 99.9% quantile {q999.max():.2e}")
    if dtype == torch.float32:
        assert (q999 < 1e-4).all(), dict(zip(GRADIENT_KAPPAS, q999.tolist(), strict=True))
    else:
        assert rel.max() < 1e-9, float(rel.max())


# -- the estimators ----------------------------------------------------------------------------------------
ESTIMATORS = {
    "reparam": ReparamEstimator,
    "implicit": ImplicitEstimator,
    "score": ScoreFunctionEstimator,
    "rsvi": RSVIEstimator,
}
PAIRS = [
    (name, family)
    for name, cls in ESTIMATORS.items()
    for family in CASES
    if cls.supports(CASES[family](2).make_q(CASES[family](2).params))
]


def _on(case: Case, device: str) -> Case:
    params = {k: v.detach().to(device).requires_grad_() for k, v in case.params.items()}
    return Case(params=params, make_q=case.make_q, f=case.f, exact=case.exact)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "family"), PAIRS)
def test_estimator_on_cuda_is_unbiased(name, family, dtype, record_property):
    """1e5 single-sample gradients on the GPU, their mean within 4 standard errors of the closed form
    (the cases of tests/estimators/estimator_cases.py, in float32 and float64)."""
    torch.manual_seed(0)
    case = _on(CASES[family](N_COPIES, dtype), CUDA)
    estimator = ESTIMATORS[name]().to(CUDA)
    grads = per_copy_gradients(estimator, case)
    assert all(g.device.type == "cuda" and g.dtype == dtype for g in grads.values())
    z = z_scores({k: g.cpu() for k, g in grads.items()}, case.exact)
    worst = max(float(v.abs().max()) for v in z.values())
    each = "; ".join(f"{k}: {', '.join(f'{v:+.2f}' for v in values.tolist())}" for k, values in z.items())
    record_property("detail", f"max |z| = {worst:.2f} ({each})")
    assert worst < 4.0


# -- the model and the data --------------------------------------------------------------------------------
MODELS = {
    "gaussian": lambda: (GaussianHead(2), NormalPrior(2), ImplicitEstimator()),
    "vonmises": lambda: (VonMisesHead(2), CircularUniformPrior(2), ImplicitEstimator()),
    "vonmises-rsvi": lambda: (VonMisesHead(2), CircularUniformPrior(2), RSVIEstimator()),
    "dirichlet": lambda: (DirichletHead(3), DirichletPrior(3, alpha=0.5), ImplicitEstimator()),
    "gamma": lambda: (GammaHead(2), GammaPrior(2), ScoreFunctionEstimator(baseline="moving_average")),
    "beta": lambda: (BetaHead(2), UnitUniformPrior(2), RSVIEstimator()),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("family", list(MODELS))
def test_model_step_and_iw_bound_on_cuda(family, dtype, record_property):
    posterior, prior, estimator = MODELS[family]()
    model = tiny_vae(posterior=posterior, prior=prior, estimator=estimator).to(device=CUDA, dtype=dtype)
    x = torch.bernoulli(torch.full((64, 6), 0.4, dtype=dtype, device=CUDA))
    loss, terms = model.training_loss(x)
    loss.backward()
    iw = model.iw_log_likelihood(x, k=20, chunk=7)
    for t in (loss, iw, *terms.values(), *(p.grad for p in model.parameters() if p.grad is not None)):
        assert t.device.type == "cuda" and t.dtype == dtype and bool(torch.isfinite(t).all())
    # the IW bound is at least the ELBO on average (4 standard errors of the per-row difference)
    gap = iw - terms["elbo"].detach()
    record_property("detail", f"IW - ELBO = {gap.mean():.3f} +- {gap.std() / math.sqrt(len(gap)):.3f} nats")
    assert gap.mean() > -4 * gap.std() / math.sqrt(len(gap))


def test_data_move_to_the_gpu_once_and_are_binarized_there():
    dm = DigitsDataModule(batch_size=100)
    dm.trainer = type("T", (), {"strategy": type("S", (), {"root_device": torch.device("cuda", 0)})()})()
    dm.trainer.world_size, dm.trainer.global_rank = 1, 0
    dm.setup("fit")
    on_gpu = dm.train_data
    assert on_gpu.device.type == "cuda"
    dm.setup("test")
    assert dm.train_data is on_gpu
    assert all(b.device.type == "cuda" for b in dm.train_dataloader())
    grey = torch.rand(50, 4, device=CUDA)
    batches = TensorBatches(grey, 8, shuffle=True, seed=3, transform=bernoulli_transform)
    assert batches.transform_generator.device.type == "cuda"
    state = batches.state_dict()
    first = list(batches)
    assert all(b.device.type == "cuda" and set(b.unique().tolist()) <= {0.0, 1.0} for b in first)
    batches.load_state_dict(state)  # a resumed epoch draws the same pixels on the GPU
    assert all(torch.equal(a, b) for a, b in zip(first, batches, strict=True))


# -- a short training run with trainer=gpu, and vae-lab eval of it ------------------------------------------
#: what Lightning logs (to the run's train.log, eval.log) when it runs on the GPU
ON_GPU = "GPU available: True (cuda), used: True"


def _train(cwd: Path, data_dir: Path, *overrides: str) -> Path:
    args = ["train", "trainer=gpu", "+debug=fast", "callbacks.progress_bar.refresh_rate=0", *overrides]
    proc = run_cli(args, cwd, env={"VAE_LAB_DATA_DIR": str(data_dir)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [p.parent for p in cwd.glob("outputs/*/*/summary.json")]
    assert len(runs) == 1, runs
    return runs[0]


def _check_gpu_run(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed", summary
    log = (run / "train.log").read_text()
    assert ON_GPU in log
    assert "data on cuda:0" in log  # moved once, in setup
    assert all(math.isfinite(summary["metrics"][k]) for k in ("test/elbo", "test/nll"))
    return summary


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory, shared_data_dir) -> Path:
    """The default VAE on digits for a few steps on the GPU, with the gradient-variance probe measuring
    every second step against the score function."""
    overrides = [
        "seed=5",
        "callbacks.grad_variance.every_n_steps=2",
        "callbacks.grad_variance.compare=[score]",
    ]
    return _train(tmp_path_factory.mktemp("gpu_run"), shared_data_dir, *overrides)


def test_training_run_on_gpu_completes(gpu_run, record_property):
    summary = _check_gpu_run(gpu_run)
    run = gpu_run
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "grad/var/encoder/score" in header  # the probe measured on the GPU
    record_property("detail", f"{summary['steps']} steps, test/elbo {summary['metrics']['test/elbo']:.3f}")


@pytest.mark.parametrize(
    "overrides",
    [["posterior=vonmises"], ["posterior=vonmises", "estimator=rsvi"], ["data=mnist", "data.batch_size=200"]],
    ids=["vonmises", "vonmises-rsvi", "mnist-dynamic-binarization"],
)
def test_other_training_runs_on_gpu_complete(overrides, tmp_path, shared_data_dir, record_property):
    summary = _check_gpu_run(_train(tmp_path, shared_data_dir, *overrides))
    record_property("detail", f"{summary['steps']} steps, test/elbo {summary['metrics']['test/elbo']:.3f}")


def test_eval_on_gpu_reproduces_the_runs_test_metrics(gpu_run, tmp_path, record_property):
    """`vae-lab eval` rebuilds the run from its checkpoint (trainer=gpu included) and scores the test split
    with the run's seed: the run's own test metrics again, to float rounding."""
    proc = run_cli(["eval", f"ckpt={gpu_run / 'checkpoints' / 'best.ckpt'}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = list(tmp_path.glob("outputs/eval/*/*/eval.json"))
    assert len(results) == 1, results
    log = (results[0].parent / "eval.log").read_text()
    assert ON_GPU in log and "data on cuda:0" in log
    metrics = json.loads(results[0].read_text())["metrics"]
    expected = json.loads((gpu_run / "summary.json").read_text())["metrics"]
    names = ["test/elbo", "test/kl", "test/recon", "test/nll"]
    worst = max(abs(metrics[k] - expected[k]) for k in names)
    record_property("detail", f"max |eval - run| = {worst:.2e} nats")
    for name in names:
        assert metrics[name] == pytest.approx(expected[name], rel=1e-5, abs=1e-5), name
