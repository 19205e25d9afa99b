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
        vae._compiled_loss = lambda x: calls.append(1) or inner(x)
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
