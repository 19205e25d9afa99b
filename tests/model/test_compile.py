"""``compile: true``: the training objective runs through torch.compile, and trains as the eager one does
(to float precision: compiled kernels may round differently)."""

from __future__ import annotations

import torch
from conftest import quiet_trainer, tiny_vae
from test_optimization import data

from vae_lab.estimators import ReparamEstimator


def fit(compiled: bool, steps: int = 6):
    torch.manual_seed(0)
    vae = tiny_vae(estimator=ReparamEstimator(), input_dim=4)
    calls = []
    if compiled:
        vae.compile_training_loss()
        inner = vae._compiled_loss
        vae._compiled_loss = lambda *args: calls.append(1) or inner(*args)
    quiet_trainer(max_steps=steps).fit(vae, train_dataloaders=data())
    return vae, len(calls)


def test_a_compiled_objective_trains_as_the_eager_one():
    torch._dynamo.reset()
    eager, _ = fit(False)
    compiled, calls = fit(True)
    assert calls == 6  # every training step went through the compiled objective
    for (name, a), b in zip(eager.state_dict().items(), compiled.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=name)
    untrained = tiny_vae(estimator=ReparamEstimator(), input_dim=4).state_dict()
    assert any(not torch.equal(a, untrained[n]) for n, a in compiled.state_dict().items())


def test_the_kl_warm_up_compiles_one_graph_and_trains_as_the_eager_one():
    """The warm-up's weight changes at every step; passed as a tensor, it recompiles nothing (as a Python
    float it recompiled at every step up to dynamo's cache limit, then fell back to eager)."""
    from torch._dynamo.utils import counters

    def warm(compiled: bool):
        torch.manual_seed(0)
        vae = tiny_vae(estimator=ReparamEstimator(), input_dim=4, kl_warmup_steps=100)
        if compiled:
            vae.compile_training_loss()
        quiet_trainer(max_steps=12).fit(vae, train_dataloaders=data())
        return vae

    torch._dynamo.reset()
    counters.clear()
    compiled = warm(True)
    assert counters["stats"]["unique_graphs"] == 1
    eager = warm(False)
    for (name, a), b in zip(eager.state_dict().items(), compiled.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=name)
