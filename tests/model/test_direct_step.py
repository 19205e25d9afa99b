"""The direct optimizer step (vae_lab.model.direct_step): taken where nothing listens to Lightning's
backward and optimizer-step hooks, the same steps bit for bit as Lightning's wrapped path, the same step
count, checkpoints that resume at their step; Lightning's path wherever something does listen."""

from __future__ import annotations

import inspect
import types

import pytorch_lightning as pl
import torch
from conftest import quiet_trainer, tiny_vae
from pytorch_lightning.utilities.signature_utils import is_param_in_hook_signature
from test_optimization import CountSteps as Steps

from vae_lab.data.loader import TensorBatches
from vae_lab.estimators import ImplicitEstimator, ReparamEstimator
from vae_lab.model.posteriors import DirichletHead
from vae_lab.model.priors import DirichletPrior
from vae_lab.model.vae import VAE
from vae_lab.runs.callback_group import CallbackGroup


class AfterBackward(pl.Callback):
    """Listens to a hook of the wrapped path: its presence must send the step through Lightning."""

    def __init__(self) -> None:
        self.calls = 0

    def on_after_backward(self, trainer, pl_module) -> None:
        self.calls += 1


def data(dim: int) -> TensorBatches:
    x = torch.bernoulli(torch.full((64, dim), 0.3), generator=torch.Generator().manual_seed(1))
    return TensorBatches(x, batch_size=8, shuffle=True, seed=0)


def fit(steps: int, *callbacks: pl.Callback, vae=None, ckpt_path=None, **trainer_kwargs):
    torch.manual_seed(0)
    vae = vae if vae is not None else tiny_vae(estimator=ReparamEstimator(), input_dim=4)
    trainer = quiet_trainer(max_steps=steps, callbacks=list(callbacks), **trainer_kwargs)
    trainer.fit(vae, train_dataloaders=data(vae.encoder[0].in_features), ckpt_path=ckpt_path)
    return vae, trainer


def assert_same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_the_direct_step_is_taken_by_default_and_equals_lightnings_wrapped_step_bit_for_bit():
    direct, trainer = fit(12)
    listener = AfterBackward()
    wrapped, wrapped_trainer = fit(12, listener)
    assert direct._direct_step and not wrapped._direct_step
    assert listener.calls == 12  # Lightning's path ran its hooks
    assert trainer.global_step == wrapped_trainer.global_step == 12
    assert_same_parameters(direct, wrapped)
    untrained = fit(0)[0]
    pairs = zip(direct.parameters(), untrained.parameters(), strict=True)
    assert any(not torch.equal(a, b) for a, b in pairs)


def test_the_prior_freeze_holds_on_the_direct_step():
    def lda_like():
        return tiny_vae(
            posterior=DirichletHead(3),
            prior=DirichletPrior(3, learnable=True, freeze_steps=5),
            estimator=ImplicitEstimator(),
            input_dim=4,
        )

    frozen_until, _ = fit(5, vae=lda_like())
    start = lda_like().prior.state_dict()
    assert frozen_until._direct_step
    for name, value in frozen_until.prior.state_dict().items():
        assert torch.equal(value, start[name]), name  # not moved during the freeze
    direct, _ = fit(9, vae=lda_like())
    wrapped, _ = fit(9, AfterBackward(), vae=lda_like())
    assert_same_parameters(direct, wrapped)
    assert any(not torch.equal(v, start[n]) for n, v in direct.prior.state_dict().items())  # moved after


def test_a_checkpoint_of_the_direct_step_resumes_at_its_step(tmp_path):
    _, trainer = fit(5)
    ckpt = tmp_path / "direct.ckpt"
    trainer.save_checkpoint(ckpt)
    steps = Steps()
    resumed, resumed_trainer = fit(8, steps, ckpt_path=ckpt)
    assert resumed._direct_step and resumed_trainer.global_step == 8 and steps.batches == 3
    # bit-exact resume (random state included) is vae-lab's resume_state callback's: tests/test_resume.py


def test_lightnings_path_is_kept_wherever_something_listens():
    listener_in_a_group = CallbackGroup([Steps(), AfterBackward()])
    for callbacks, kwargs in [
        ((listener_in_a_group,), {}),
        ((), {"profiler": "simple"}),
        ((), {"accumulate_grad_batches": 2}),
    ]:
        vae, _ = fit(2, *callbacks, **kwargs)
        assert not vae._direct_step, (callbacks, kwargs)

    class OwnBackward(type(tiny_vae())):
        def on_before_backward(self, loss):
            pass

    own = tiny_vae(estimator=ReparamEstimator(), input_dim=4)
    own.__class__ = OwnBackward
    vae, _ = fit(2, vae=own)
    assert not vae._direct_step


def test_training_steps_signature_is_computed_once_and_is_the_functions_own():
    """Lightning asks every batch whether training_step takes batch_idx; the cached answer is the live one,
    and a subclass that overrides training_step gets its own signature."""
    f = VAE.training_step
    copy = types.FunctionType(f.__code__, f.__globals__, f.__name__, f.__defaults__, f.__closure__)
    copy.__annotations__ = f.__annotations__
    assert "__signature__" in vars(f) and inspect.signature(f) == inspect.signature(copy)
    assert is_param_in_hook_signature(tiny_vae(input_dim=4).training_step, "batch_idx", min_args=2)

    class OneArgument(VAE):
        def training_step(self, x):
            return super().training_step(x, 0)

    assert not is_param_in_hook_signature(OneArgument.training_step, "batch_idx", min_args=2)
