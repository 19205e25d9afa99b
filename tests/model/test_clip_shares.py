"""Shares of a posterior's clipped parameters at the ends of the head's clip range (``clip_shares``), and
the ``{split}/clip_low`` / ``{split}/clip_high`` metrics the model logs from them.

The expected shares are counted from the encoder outputs the test chose: each clipped slot of a head's
output (the concentration of a von Mises, the last output of a power spherical, both Beta exponents, a
Gamma's shape and rate, every Dirichlet output) is set far below (softplus -> 0, clipped up to the low
end), far above (clipped to the high end) or inside the range; every other output (locations) far out,
so that counting it would show.
"""

from __future__ import annotations

import pytest
import torch
from conftest import quiet_trainer, tiny_vae

from vae_lab.data.loader import TensorBatches
from vae_lab.model.posteriors import (
    BetaHead,
    DirichletHead,
    GammaHead,
    GaussianHead,
    PowerSphericalHead,
    VonMisesHead,
)
from vae_lab.model.priors import CircularUniformPrior

D, B = 4, 50
FAR = 1e4
# which encoder outputs are clipped parameters, for a head of latent_dim D
CLIPPED_SLOTS = {
    VonMisesHead: slice(2 * D, 3 * D),  # (a, b) -> location, then the concentration
    PowerSphericalHead: slice(D, D + 1),  # D outputs -> direction, then the concentration
    BetaHead: slice(0, 2 * D),
    GammaHead: slice(0, 2 * D),  # shape and rate
    DirichletHead: slice(0, D),
}


@pytest.mark.parametrize("make", CLIPPED_SLOTS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shares_count_the_clipped_parameters_at_each_end(make, dtype):
    head = make(D)
    generator = torch.Generator().manual_seed(0)
    params = torch.full((B, head.param_dim), -FAR, dtype=dtype)  # non-clipped outputs: far out
    params[:, : head.param_dim // 2] = FAR
    slots = CLIPPED_SLOTS[make]
    n = slots.stop - slots.start
    where = torch.randint(0, 3, (B, n), generator=generator)  # 0: low end, 1: inside, 2: high end
    inside = torch.empty(B, n, dtype=dtype).uniform_(-2.0, 2.0, generator=generator)  # softplus 0.13-2.1
    params[:, slots] = torch.where(where == 0, -FAR, torch.where(where == 2, FAR, inside))
    low, high = head.clip_shares(head(params))
    assert low.item() == pytest.approx((where == 0).double().mean().item(), abs=1e-7)
    assert high.item() == pytest.approx((where == 2).double().mean().item(), abs=1e-7)
    assert 0.2 < low.item() < 0.5 and 0.2 < high.item() < 0.5  # the draw has all three kinds


def test_a_gamma_rate_counts_against_its_own_range():
    """A rate of 500 is inside [1e-3, 1e3] but at the end of a rate range [0.1, 20]."""
    head = GammaHead(D, min_rate=0.1, max_rate=20.0)
    shape_at_500 = torch.full((B, D), 500.0)  # softplus(500) = 500: inside the concentration range
    low, high = head.clip_shares(head(torch.cat([shape_at_500, shape_at_500], -1)))
    assert (low.item(), high.item()) == (0.0, 0.5)


def test_a_head_that_clips_nothing_has_no_shares():
    head = GaussianHead(D)
    assert head.clip_shares(head(torch.full((B, head.param_dim), FAR))) is None
    assert not head.clips and all(make(D).clips for make in CLIPPED_SLOTS)


def test_the_model_logs_the_shares_over_an_epoch():
    """Validation and test of a von Mises VAE whose encoder puts a third of the concentrations at the
    high end: ``val/clip_high`` and ``test/clip_high`` are 1/3 (batches of unequal size: weighted by
    rows); a Gaussian VAE logs no clip metric."""
    model = tiny_vae(posterior=VonMisesHead(3), prior=CircularUniformPrior(3))
    with torch.no_grad():
        last = model.encoder[-1]
        last.weight.zero_()
        last.bias.fill_(0.5)
        last.bias[6] = FAR  # the first concentration: at max_concentration for every row
    data = torch.bernoulli(torch.full((7, 6), 0.5), generator=torch.Generator().manual_seed(1))
    trainer = quiet_trainer()
    trainer.validate(model, dataloaders=TensorBatches(data, batch_size=3), verbose=False)
    assert trainer.callback_metrics["val/clip_high"].item() == pytest.approx(1 / 3)
    assert trainer.callback_metrics["val/clip_low"].item() == 0.0
    trainer.test(model, dataloaders=TensorBatches(data, batch_size=4), verbose=False)
    assert trainer.callback_metrics["test/clip_high"].item() == pytest.approx(1 / 3)

    gaussian = tiny_vae()
    trainer.validate(gaussian, dataloaders=TensorBatches(data, batch_size=3), verbose=False)
    assert not [k for k in trainer.callback_metrics if "clip" in k]
