"""The fused CPU kernel for dz/dkappa (vae_lab.distributions.kernels, von_mises_grad.cpp): against 30-digit
quadrature on the quantile grid of test_von_mises_cdf.py, against the eager float64 code, independent of the
thread count, and the switches around it (``VAE_LAB_FUSED=0``, a failed build, a lazy import).

The kernel is compiled on first use (about half a minute, then cached by torch for the machine).
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_von_mises_cdf import quantile_grid  # noqa: F401  (the module-scoped fixture: x, kappa, mpmath)

from vae_lab.distributions import best_fisher, kernels
from vae_lab.distributions import von_mises_cdf as vmc

DTYPES = [torch.float32, torch.float64]
# the series buckets of the float64 eager code (von_mises_cdf._terms_up_to): kappa <= 0.5, 1, ..., 32, < 50
_BUCKET_EDGES = torch.tensor([0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 50.0], dtype=torch.float64)


@pytest.fixture(scope="module")
def fused():
    """The compiled extension (the tests need it: this machine has a compiler)."""
    module = kernels.load()
    assert module is not None, "the fused kernel did not build"
    return module.dz_dconcentration


def _eager(monkeypatch, x: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    """The eager code, each series bucket evaluated on its own, so that every element runs with the number
    of terms of its own concentration, as in the kernel (a mixed batch would run with its largest)."""
    with monkeypatch.context() as m:
        m.setenv(kernels.ENV_FLAG, "0")
        bucket = torch.bucketize(kappa.double(), _BUCKET_EDGES, right=False)  # first edge >= kappa
        bucket = torch.where(kappa.double() >= 50.0, len(_BUCKET_EDGES), bucket)
        out = torch.empty_like(x)
        for b in bucket.unique():
            idx = (bucket == b).nonzero().squeeze(1)
            out[idx] = vmc.von_mises_dz_dconcentration(x[idx], kappa[idx])
        return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_quantile_grid(quantile_grid, fused, dtype):  # noqa: F811
    """Relative error against 30-digit quadrature, 24 quantiles out to 6 standard deviations, kappa from
    1e-3 to 1e3 and both sides of every switch: at most 4e-6 in both dtypes (measured 2.6e-6, Hill's normal
    approximation itself just above kappa = 50), and for the series (kappa < 50) at most 2e-7 in float32
    (measured 1.0e-7: the rounding of the output) and 2e-8 in float64 (measured 1.1e-8). The eager float32
    code reached 2.8e-5 (float32 arithmetic, the normal approximation from 10.5 on)."""
    x, k, ref = quantile_grid
    got = fused(torch.tensor(x, dtype=dtype), torch.tensor(k, dtype=dtype)).double().numpy()
    rel = np.abs(got - ref) / np.abs(ref)
    worst = rel.argmax()
    assert rel.max() <= 4e-6, f"relative error {rel.max():.2e} at kappa={k[worst]:.4g}, x={x[worst]:.6g}"
    series = k < 50.0
    assert rel[series].max() <= (2e-7 if dtype == torch.float32 else 2e-8), rel[series].max()


def _hard_points(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples for kappa log-uniform in [1e-3, 1e3], then points near x = 0 (any kappa) and near x = +-pi
    (kappa <= 6, so that they stay within 5 standard deviations), and x = 0 itself."""
    kappa = torch.empty(n, dtype=torch.float64).uniform_(math.log(1e-3), math.log(1e3), generator=gen).exp_()
    x = best_fisher.sample_centred(kappa, gen)
    m = n // 10
    tiny = torch.logspace(-15, -3, m, dtype=torch.float64)
    x[:m] = tiny * torch.where(torch.arange(m) % 2 == 0, 1.0, -1.0)
    small_k = torch.empty(2 * m, dtype=torch.float64).uniform_(math.log(1e-3), math.log(6.0), generator=gen)
    kappa[m : 3 * m] = small_k.exp()
    x[m : 2 * m] = math.pi - tiny
    x[2 * m : 3 * m] = -(math.pi - tiny)
    x[3 * m] = 0.0
    return x, kappa


def test_fused_matches_eager_float64(monkeypatch, fused):
    """Relative difference at most 1e-9 (measured: 4e-12, within 5 standard deviations) between the
    kernel and the eager float64 code on the same number of terms, including x near 0 and +-pi."""
    x, kappa = _hard_points(20000, torch.Generator().manual_seed(5))
    got = fused(x, kappa)
    ref = _eager(monkeypatch, x, kappa)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=0.0)
    assert (got[x == 0] == 0).all()


def test_fused_float32_is_the_float64_result_rounded(fused):
    """All arithmetic is in double: the float32 result is the float64 one (of the same inputs) rounded."""
    x, kappa = _hard_points(20000, torch.Generator().manual_seed(6))
    x32, k32 = x.float(), kappa.float()
    assert torch.equal(fused(x32, k32), fused(x32.double(), k32.double()).float())


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_independent_of_thread_count(fused, dtype):
    gen = torch.Generator().manual_seed(7)
    x, kappa = _hard_points(100_003, gen)
    x, kappa = x.to(dtype), kappa.to(dtype)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = fused(x, kappa)
        torch.set_num_threads(2)
        two = fused(x, kappa)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dispatch_and_env_switch(monkeypatch, fused, dtype):
    """von_mises_dz_dconcentration takes the kernel on CPU (also for an expanded concentration), and the
    eager code with VAE_LAB_FUSED=0 (which, in float32, computes in float32 and so differs in the last
    bits)."""
    gen = torch.Generator().manual_seed(8)
    kappa = torch.empty(5000, dtype=dtype).uniform_(-3.0, 3.0, generator=gen).exp_()
    x = best_fisher.sample_centred(kappa, gen)
    monkeypatch.delenv(kernels.ENV_FLAG, raising=False)
    assert torch.equal(vmc.von_mises_dz_dconcentration(x, kappa), fused(x, kappa))
    one = kappa[:1].expand(5000)
    assert torch.equal(vmc.von_mises_dz_dconcentration(x, one), fused(x, one.contiguous()))
    monkeypatch.setenv(kernels.ENV_FLAG, "0")
    assert kernels.von_mises_dz_dconcentration(x, kappa) is None
    eager = vmc.von_mises_dz_dconcentration(x, kappa)
    torch.testing.assert_close(eager, fused(x, kappa), rtol=1e-4 if dtype == torch.float32 else 1e-8, atol=0)
    if dtype == torch.float32:
        assert not torch.equal(eager, fused(x, kappa))


def test_failed_build_falls_back_to_eager(monkeypatch, caplog, tmp_path):
    """A build that fails logs one warning and leaves the eager code for the rest of the process."""
    import torch.utils.cpp_extension as cpp

    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("Error building extension 'x': g++: not found")

    monkeypatch.setattr(cpp, "load_inline", broken)
    monkeypatch.setattr(cpp, "_get_build_directory", lambda name, verbose: str(tmp_path))  # not torch's cache
    monkeypatch.setattr(kernels, "_module", None)
    monkeypatch.setattr(kernels, "_failed", False)
    monkeypatch.delenv(kernels.ENV_FLAG, raising=False)
    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    k = torch.tensor([0.3, 3.0, 80.0], dtype=torch.float64)
    with caplog.at_level(logging.WARNING, logger=kernels.__name__):
        first = vmc.von_mises_dz_dconcentration(x, k)
        second = vmc.von_mises_dz_dconcentration(x, k)
    assert calls == [1, 1] and not kernels.enabled()  # with OpenMP, then without
    assert [r.levelno for r in caplog.records] == [logging.WARNING] and "g++" in caplog.records[0].message
    monkeypatch.setenv(kernels.ENV_FLAG, "0")
    assert torch.equal(first, vmc.von_mises_dz_dconcentration(x, k)) and torch.equal(second, first)


def test_build_without_openmp_is_the_fallback(monkeypatch, caplog):
    """A compiler without OpenMP gets the serial build, with one warning that the kernels run on one
    thread; the kernels stay on."""
    built = object()

    def build(name, cflags, ldflags):
        if "-fopenmp" in cflags:
            raise RuntimeError("c++: error: unsupported option '-fopenmp'")
        return built

    monkeypatch.setattr(kernels, "_build", build)
    monkeypatch.setattr(kernels, "_module", None)
    monkeypatch.setattr(kernels, "_failed", False)
    monkeypatch.delenv(kernels.ENV_FLAG, raising=False)
    with caplog.at_level(logging.WARNING, logger=kernels.__name__):
        assert kernels.load() is built and kernels.load() is built
    assert kernels.enabled()
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "without OpenMP" in caplog.records[0].message and "-fopenmp" in caplog.records[0].message


def test_kernels_split_over_torchs_threads(fused):
    """The kernels' at::parallel_for uses torch's intra-op threads (the extension is built with OpenMP and
    shares torch's runtime): 2 threads for a large input at torch.set_num_threads(2), 1 at 1, and 1 below
    the grain."""
    module = kernels.load()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two, small = module.threads_used(1 << 16, 2048), module.threads_used(2000, 2048)
        torch.set_num_threads(1)
        one = module.threads_used(1 << 16, 2048)
    finally:
        torch.set_num_threads(threads)
    assert (two, small, one) == (2, 1, 1)


def test_import_compiles_nothing():
    """Importing vae_lab (and drawing a sample with the kernels off) neither builds the kernel nor imports
    cpp_extension: the build waits for the first fused draw or gradient."""
    code = (
        "import os, sys, torch, vae_lab, vae_lab.distributions.von_mises as m; "
        "os.environ['VAE_LAB_FUSED'] = '0'; m.VonMises(torch.zeros(2), torch.ones(2)).sample(); "
        "print('torch.utils.cpp_extension' in sys.modules, m.von_mises_dz_dconcentration.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "False"
