"""The probes' measurements follow the device and dtype of the model they measure.

The gradient-variance probe (its own estimator and swapped-in comparison estimators, the float64 moments)
and the three image dashboards, on a model in float32 or float64, run under
:func:`device_trap.defaults_elsewhere` (torch's default device ``meta``, default dtype the other
precision): a tensor made from the defaults instead of from the model or its data raises ``DeviceLeak``.
Their private generators (the choice of the fixed rows) are CPU generators on purpose (the same rows on
every device), and say so: the rows' indices are drawn on the generator's device and moved.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_vae
from device_trap import defaults_elsewhere
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.plugins.precision import Precision

from vae_lab.model.posteriors import GaussianHead, VonMisesHead
from vae_lab.model.priors import CircularUniformPrior, NormalPrior, VonMisesPrior
from vae_lab.probes import GradientVarianceProbe, LatentGridImages, PriorSampleImages, ReconstructionImages

DTYPES = [torch.float32, torch.float64]


def _rows(dtype: torch.dtype, n: int = 30) -> torch.Tensor:
    return torch.bernoulli(torch.full((n, 6), 0.4, dtype=dtype), generator=torch.Generator().manual_seed(0))


class _Data:
    image_shape, input_dim = (2, 3), 6

    def __init__(self, rows: torch.Tensor) -> None:
        self.rows = rows

    def val_dataloader(self):
        return [self.rows[:20], self.rows[20:]]


def _trainer(rows: torch.Tensor, step: int = 3, loggers=()) -> SimpleNamespace:
    return SimpleNamespace(
        global_step=step,
        current_epoch=0,
        datamodule=_Data(rows),
        precision_plugin=Precision(),
        loggers=list(loggers),
        is_global_zero=True,
        sanity_checking=False,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("family", ["gaussian", "vonmises"])
def test_gradient_variance_probe_follows_the_model(family, dtype):
    head, prior = (
        (GaussianHead(2), NormalPrior(2))
        if family == "gaussian"
        else (VonMisesHead(2), CircularUniformPrior(2))
    )
    model = tiny_vae(posterior=head, prior=prior).to(dtype)
    rows = _rows(dtype)
    probe = GradientVarianceProbe(every_n_steps=1, n_estimates=3, batch_size=25, compare=["score", "rsvi"])
    probe.setup(_trainer(rows), model, "fit")  # builds the comparison estimators (before the model moves)
    with defaults_elsewhere(dtype):
        moments = probe.moments(_trainer(rows), model)
    assert set(moments) == ({"", "/score", "/rsvi"} if family == "vonmises" else {"", "/score"})
    for by_group in moments.values():
        for m in by_group.values():
            assert (
                m.mean.dtype == torch.float64 and m.mean.device.type == "cpu"
            )  # float64 on the model's device
            assert m.variance >= 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("head", "prior"),
    [(GaussianHead, NormalPrior), (GaussianHead, VonMisesPrior), (VonMisesHead, CircularUniformPrior)],
)
def test_image_dashboards_follow_the_model(head, prior, dtype, tmp_path):
    """The normal prior's grid comes from its icdf, the von Mises prior's (under a Gaussian posterior) from
    quantiles estimated from prior draws, the von Mises posterior's from evenly spaced angles."""
    model = tiny_vae(posterior=head(2), prior=prior(2)).to(dtype)
    logger = TensorBoardLogger(tmp_path, name="tensorboard", version="")
    trainer = _trainer(_rows(dtype), loggers=[logger])
    callbacks = [
        ReconstructionImages(n_images=6, ncol=3),
        PriorSampleImages(n_images=4),
        LatentGridImages(n_per_side=3, n_quantile_samples=200),
    ]
    with defaults_elsewhere(dtype):
        for callback in callbacks:
            callback.on_validation_epoch_end(trainer, model)
    assert [c.images for c in callbacks] == [1, 1, 1], [c.enabled for c in callbacks]
