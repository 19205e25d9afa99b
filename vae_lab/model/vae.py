"""The VAE as a LightningModule, composed from encoder, posterior head, prior, decoder, likelihood,
gradient estimator and optimizer (Kingma & Welling 2014; Rezende et al. 2014).

ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z)), in nats per data point: summed over data and
latent dimensions, averaged over the batch. With ``analytic_kl`` the KL is the closed form registered
with ``torch.distributions.kl.register_kl`` (Monte Carlo where none is registered); the estimator then
differentiates f(z) = log p(x|z) only. Otherwise f(z) = log p(x|z) + log p(z) - log q(z|x).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.distributions import Distribution, kl_divergence

import vae_lab.distributions.kl  # noqa: F401  (registers vae-lab's closed-form KLs)
from vae_lab.errors import ConfigError, positive_int
from vae_lab.estimators.base import Estimator
from vae_lab.model.posteriors import PosteriorHead
from vae_lab.model.priors import Prior

log = logging.getLogger(__name__)

class VAE(pl.LightningModule):
    """A variational autoencoder whose gradient estimator is a plug-in.

    Args:
        posterior: head mapping encoder outputs to q(z|x).
        prior: module whose ``forward()`` gives p(z).
        estimator: gradient estimator (reparam, implicit, score, rsvi).
        encoder, decoder: callables ``(in_dim, out_dim) -> nn.Module`` (Hydra partials of ``MLP``).
        likelihood: observation model with ``param_dim(input_dim)`` and ``log_prob(x, params)``.
        optimizer: callable ``params -> torch.optim.Optimizer`` (a Hydra partial).
        input_dim: data dimension (from the data module).
        latent_dim: latent dimension (the posterior head's).
        n_samples: Monte Carlo samples per data point in the training objective.
        analytic_kl: use the closed-form KL when one is registered.
        iw_samples, iw_chunk: K and chunk size of the importance-weighted bound ``test/nll``.
    """

    def __init__(
        self,
        posterior: PosteriorHead,
        prior: Prior,
        estimator: Estimator,
        encoder: Callable[..., nn.Module],
        decoder: Callable[..., nn.Module],
        likelihood: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        input_dim: int,
        latent_dim: int,
        n_samples: int = 1,
        analytic_kl: bool = True,
        iw_samples: int = 100,
        iw_chunk: int = 50,
    ):
        super().__init__()
        positive_int("latent_dim", latent_dim)
        self.n_samples = positive_int("n_samples", n_samples)
        self.iw_samples = positive_int("iw_samples", iw_samples)
        self.iw_chunk = positive_int("iw_chunk", iw_chunk)
        if not estimator.supports(posterior.family):
            raise ConfigError(
                "estimator",
                f"the {posterior.family} posterior supports {_estimators_for(posterior.family)}",
                type(estimator).__name__,
                detail=f"estimator {type(estimator).__name__} does not support posterior={posterior.family}; "
                f"estimators for {posterior.family}: {_estimators_for(posterior.family)}",
            )
        self.posterior, self.prior, self.estimator, self.likelihood = posterior, prior, estimator, likelihood
        self.encoder = encoder(in_dim=input_dim, out_dim=posterior.param_dim)
        self.decoder = decoder(in_dim=posterior.decoder_dim, out_dim=likelihood.param_dim(input_dim))
        self.optimizer_factory = optimizer
        _check_optimizer(optimizer)
        self.analytic_kl = bool(analytic_kl) and self._kl_is_registered()
        if analytic_kl and not self.analytic_kl:
            log.warning("no closed-form KL for this posterior/prior pair: using a Monte Carlo estimate")

    # -- the objective ---------------------------------------------------------------------------
    def _kl_is_registered(self) -> bool:
        with torch.no_grad():
            q = self.posterior(torch.zeros(1, self.posterior.param_dim))
            try:
                kl_divergence(q, self.prior())
            except NotImplementedError:
                return False
        return True

    def q(self, x: Tensor) -> Distribution:
        """The approximate posterior q(z|x)."""
        return self.posterior(self.encoder(x))

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z), shape z.shape[:-1]."""
        return self.likelihood.log_prob(x, self.decoder(self.posterior.decoder_input(z)))

    def elbo(self, x: Tensor, n_samples: int | None = None) -> dict[str, Tensor]:
        """Per-data-point ELBO terms (shape (B,)) and the surrogate whose gradient is the estimator's.

        Returns a dict with ``elbo``, ``recon`` (E_q log p(x|z)), ``kl`` and ``surrogate``.
        """
        q, p = self.q(x), self.prior()
        recon: list[Tensor] = []

        def f(z: Tensor) -> Tensor:
            ll = self.log_likelihood(x, z)
            recon.append(ll)
            return ll if self.analytic_kl else ll + p.log_prob(z) - q.log_prob(z)

        est = self.estimator(q, f, n_samples or self.n_samples)
        value, surrogate, rec = est.value.mean(0), est.surrogate.mean(0), recon[-1].mean(0)
        if self.analytic_kl:
            kl = kl_divergence(q, p)
            return {"elbo": value - kl, "recon": rec, "kl": kl, "surrogate": surrogate - kl}
        return {"elbo": value, "recon": rec, "kl": rec - value, "surrogate": surrogate}

    @torch.no_grad()
    def iw_log_likelihood(self, x: Tensor, k: int | None = None, chunk: int | None = None) -> Tensor:
        """Importance-weighted bound log (1/K) sum_k p(x, z_k) / q(z_k|x), z_k ~ q (Burda et al. 2016).

        Computed over chunks of samples with a running log-sum-exp, so memory is O(chunk * B).
        Returns shape (B,); it is a lower bound on log p(x) that tightens as K grows.
        """
        k, chunk = k or self.iw_samples, chunk or self.iw_chunk
        q, p = self.q(x), self.prior()
        total: Tensor | None = None
        for start in range(0, k, chunk):
            z = q.sample((min(chunk, k - start),))
            log_w = self.log_likelihood(x, z) + p.log_prob(z) - q.log_prob(z)
            part = log_w.logsumexp(0)
            total = part if total is None else torch.logaddexp(total, part)
        return total - math.log(k)

    # -- Lightning hooks -------------------------------------------------------------------------
    def training_step(self, x: Tensor, batch_idx: int) -> Tensor:
        terms = self.elbo(x)
        loss = -terms["surrogate"].mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} at step {self.global_step}")
        self._log_terms("train", terms, x.shape[0], on_step=True)
        return loss

    def validation_step(self, x: Tensor, batch_idx: int) -> None:
        self._log_terms("val", self.elbo(x), x.shape[0])

    def test_step(self, x: Tensor, batch_idx: int) -> None:
        self._log_terms("test", self.elbo(x), x.shape[0])
        nll = -self.iw_log_likelihood(x).mean()
        self.log("test/nll", nll, batch_size=x.shape[0], on_epoch=True)

    def _log_terms(self, split: str, terms: dict[str, Tensor], batch_size: int, on_step: bool = False) -> None:
        for name in ("elbo", "recon", "kl"):
            self.log(f"{split}/{name}", terms[name].detach().mean(), batch_size=batch_size, on_step=on_step,
                     on_epoch=not on_step, prog_bar=name == "elbo")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.parameters())


def _check_optimizer(factory: Callable[..., torch.optim.Optimizer]) -> None:
    """Build the optimizer once on a dummy parameter so a bad setting (lr < 0) fails at start-up."""
    try:
        factory([nn.Parameter(torch.zeros(1))])
    except (ValueError, TypeError, RuntimeError) as err:
        raise ConfigError("optimizer", str(err), detail=f"optimizer: {err}") from err


def _estimators_for(family: str) -> str:
    from vae_lab.config import estimators_for

    return ", ".join(estimators_for(family)) or "none"
