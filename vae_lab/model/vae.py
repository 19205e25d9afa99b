"""The VAE as a LightningModule, composed from encoder, posterior head, prior, decoder, likelihood,
gradient estimator and optimizer (Kingma & Welling 2014; Rezende et al. 2014).

ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z)), in nats per data point: summed over data and
latent dimensions, averaged over the batch. With ``analytic_kl`` the KL is the closed form registered
with ``torch.distributions.kl.register_kl`` (Monte Carlo where none is registered); the estimator then
differentiates f(z) = log p(x|z) only. Otherwise f(z) = log p(x|z) + log p(z) - log q(z|x).

Count data (a likelihood with ``counts = True``, e.g. ``WordCounts``) also get the per-word perplexity

    {val,test}/perplexity = exp( (1/D) sum_d -ELBO_d / N_d ),   N_d = sum_w x_dw,

the exponential of the mean over the split's D documents of the negative ELBO per token (documents without
tokens are left out). Per-document ratios are accumulated over the epoch's batches and exponentiated once at
the epoch's end, so the figure does not depend on the batch size. This is the definition of the paper's
code (Figurnov et al. 2018, via TensorFlow Probability's LDA example: ``exp(mean(-elbo / words))``).

A prior with ``freeze_steps > 0`` is held fixed for that many optimizer steps (``DirichletPrior``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.distributions import Distribution, constraints, kl_divergence

import vae_lab.distributions.kl  # noqa: F401  (registers vae-lab's closed-form KLs)
from vae_lab import checkpoint as run_checkpoint
from vae_lab.data.step_batches import StepBatches
from vae_lab.distributions.capabilities import sample_support, support_covers
from vae_lab.errors import ConfigError, check, positive_int
from vae_lab.estimators.base import Estimator
from vae_lab.model import direct_step, iw, lean_dispatch, multi_step, perplexity, step_metrics
from vae_lab.model.posteriors import PosteriorHead
from vae_lab.model.priors import Prior

log = logging.getLogger(__name__)


class VAE(lean_dispatch.LeanDispatch, pl.LightningModule):
    """A variational autoencoder whose gradient estimator is a plug-in.

    The test loop (``test_step``) logs the ELBO terms, the importance-weighted ``nll`` and, for count
    data, the ``perplexity`` under ``{test_split}/`` (``test/elbo``, ...); `vae-lab eval split=val` runs
    the same loop over the validation rows with ``test_split = "val"``. ``run_config``, set by
    :func:`vae_lab.build.build`, is stored in every checkpoint (:mod:`vae_lab.checkpoint`).

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
        kl_warmup_steps: deterministic warm-up (Bowman et al. 2016; Sønderby et al. 2016): the training
            objective weighs the KL term by beta = min(1, step / kl_warmup_steps), which keeps weak
            latents from collapsing onto the prior early in training. 0 (default) trains on the ELBO
            itself from the first step. Logged metrics are always the unweighted ELBO.
    """

    #: the split name the test loop logs under; `vae-lab eval` sets it to the split it scores
    test_split: str = "test"
    #: the run's config (plain dict), stored in checkpoints; None: checkpoints without it
    run_config: dict[str, Any] | None = None
    #: a list set by `vae-lab eval per_example=true`: the test loop adds each batch's (elbo, recon, kl, nll)
    per_example: list[Tensor] | None = None
    steps_per_batch: int = 1  #: optimizer steps per Lightning batch (the run's top-level key, set by build)

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
        kl_warmup_steps: int = 0,
    ):
        super().__init__()
        positive_int("latent_dim", latent_dim)
        self.n_samples = positive_int("n_samples", n_samples)
        self.iw_samples = positive_int("iw_samples", iw_samples)
        self.iw_chunk = positive_int("iw_chunk", iw_chunk)
        warmup_ok = isinstance(kl_warmup_steps, int) and kl_warmup_steps >= 0
        check(warmup_ok, "kl_warmup_steps", "an integer >= 0", kl_warmup_steps)
        self.kl_warmup_steps = kl_warmup_steps
        with torch.no_grad():
            q_example = posterior(torch.zeros(1, posterior.param_dim))
        if not estimator.supports(q_example):
            from vae_lab.config import estimators_for

            allowed = ", ".join(estimators_for(q_example)) or "none"
            raise ConfigError(
                "estimator",
                f"estimators for the {posterior.family} posterior: {allowed}",
                type(estimator).__name__,
            )
        self.posterior, self.prior, self.estimator, self.likelihood = posterior, prior, estimator, likelihood
        self.encoder = encoder(in_dim=input_dim, out_dim=posterior.param_dim)
        self.decoder = decoder(in_dim=posterior.decoder_dim, out_dim=likelihood.param_dim(input_dim))
        if getattr(self.decoder, "needs_simplex", False) and q_example.support is not constraints.simplex:
            raise ConfigError(
                "posterior",
                "",
                None,
                detail=f"the decoder {type(self.decoder).__name__} (model=lda) reads topic proportions on "
                f"the simplex and needs posterior=dirichlet, not posterior={posterior.family}",
            )
        # count data: sums of per-document log-perplexities and document counts over an epoch, per split
        self.counts = bool(getattr(likelihood, "counts", False))
        self._perplexity_sums: dict[str, Tensor] = {}
        self._direct_step = False  # set per fit in on_train_start (vae_lab.model.direct_step)
        self._multi_step = multi_step.Plan()  # likewise (vae_lab.model.multi_step)
        self._compiled_loss: Callable[..., tuple[Tensor, dict[str, Tensor]]] | None = None
        self._prior_params = [p for p in prior.parameters() if p.requires_grad]
        self.prior_freeze_steps = int(getattr(prior, "freeze_steps", 0) or 0)
        self.optimizer_factory = optimizer
        _check_optimizer(optimizer)
        self._check_prior_support(q_example)
        self.analytic_kl = bool(analytic_kl) and self._kl_is_registered()
        if analytic_kl and not self.analytic_kl:
            log.warning("no closed-form KL for this posterior/prior pair: using a Monte Carlo estimate")

    # -- the objective ---------------------------------------------------------------------------
    def _check_prior_support(self, q: Distribution) -> None:
        """Fail at construction when the posterior's support is not inside the prior's (e.g. a Gaussian
        posterior with a Gamma prior), where the KL would otherwise come out as NaN mid-training. Compared
        as support constraints (:func:`vae_lab.distributions.capabilities.support_covers`); a support that
        is not an interval is let through."""
        if support_covers(self.prior().support, sample_support(q)) is False:
            raise ConfigError(
                "prior",
                "",
                None,
                detail=f"prior: {type(self.prior).__name__} does not cover the support of the "
                f"{self.posterior.family} posterior (its samples lie outside the prior's support); use "
                f"prior=natural, the posterior's own prior",
            )

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

    def elbo(
        self,
        x: Tensor,
        n_samples: int | None = None,
        kl_weight: float | Tensor = 1.0,
        q: Distribution | None = None,
    ) -> dict[str, Tensor]:
        """Per-data-point ELBO terms (shape (B,)) and the surrogate whose gradient is the estimator's.

        Returns a dict with ``elbo``, ``recon`` (E_q log p(x|z)), ``kl`` and ``surrogate``. The surrogate
        estimates E_q log p(x|z) - kl_weight * KL (the ELBO at the default weight 1); ``elbo`` is always
        the unweighted bound. ``q``: q(z|x) where the caller has it already.
        """
        q, p = self.q(x) if q is None else q, self.prior()
        recon: list[Tensor] = []
        log_ratio: list[Tensor] = []

        def f(z: Tensor) -> Tensor:
            ll = self.log_likelihood(x, z)
            recon.append(ll)
            if self.analytic_kl:
                return ll
            log_ratio.append(p.log_prob(z) - q.log_prob(z))
            return ll + kl_weight * log_ratio[-1]

        est = self.estimator(q, f, n_samples or self.n_samples)
        surrogate = est.surrogate.mean(0)
        rec = surrogate if est.surrogate is recon[-1] else recon[-1].mean(0)  # f(z) itself: one mean
        at_one = not isinstance(kl_weight, Tensor) and kl_weight == 1.0  # x * 1.0 is x: no multiply
        if self.analytic_kl:
            kl = kl_divergence(q, p)
            surrogate = surrogate - (kl if at_one else kl_weight * kl)
            return {"elbo": rec - kl, "recon": rec, "kl": kl, "surrogate": surrogate}
        # f(z) = log p(x|z) + kl_weight * log p(z)/q(z|x); the bound itself is at weight 1
        elbo = est.value.mean(0) if at_one else rec + log_ratio[-1].mean(0)
        return {"elbo": elbo, "recon": rec, "kl": rec - elbo, "surrogate": surrogate}

    def iw_log_likelihood(self, x: Tensor, k: int | None = None, chunk: int | None = None) -> Tensor:
        """Importance-weighted bound log (1/K) sum_k p(x, z_k) / q(z_k|x), z_k ~ q (Burda et al. 2016).

        K = ``k`` (default ``iw_samples``) samples drawn ``chunk`` (default ``iw_chunk``) at a time with a
        running log-sum-exp (:func:`vae_lab.model.iw.iw_log_likelihood`), so memory is O(chunk * B * D).
        Returns shape (B,); it is a lower bound on log p(x) that tightens as K grows.
        """
        return iw.iw_log_likelihood(self, x, k or self.iw_samples, chunk or self.iw_chunk)

    def training_loss(
        self, x: Tensor, kl_weight: float | Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The training objective at the current step and the ELBO terms it was computed from.

        loss = -(1/B) sum_b surrogate_b, the surrogate estimating E_q log p(x_b|z) - beta KL(q(z|x_b) || p(z))
        with beta = :meth:`kl_weight` (the KL warm-up; 1 without it). Its gradient is the one an optimizer
        step follows; ``training_step`` and the gradient-variance probe both differentiate this function,
        so the probe measures the gradient that trains (whatever estimator is plugged in at the time).
        ``kl_weight`` overrides beta (the compiled objective takes it as a tensor: compile_training_loss).
        """
        terms = self.elbo(x, kl_weight=self.kl_weight() if kl_weight is None else kl_weight)
        return -terms["surrogate"].mean(), terms

    def compile_training_loss(self) -> None:
        """Train on ``torch.compile(self.training_loss)`` (the config's ``compile: true``). The first step
        compiles (half a minute to minutes; once more for a last, smaller batch; the KL warm-up's weight
        is a tensor input, so its change recompiles nothing). It pays on long runs of objectives that
        compile into one graph (Normal latents); rejection samplers break the graph. Validation, test
        and the probes stay eager; compiled kernels round differently, so a compiled run matches an
        eager one of the same seed to float precision, not bit for bit.
        """
        self._compiled_loss = torch.compile(self.training_loss)

    # -- Lightning hooks -------------------------------------------------------------------------
    @property
    def automatic_optimization(self) -> bool:
        """False: ``training_step`` takes the optimizer step itself (Lightning's manual optimization), the
        same computation in the same order without the automatic loop's closure and per-step hooks. With
        gradient clipping or accumulation (``trainer.gradient_clip_val``, ``accumulate_grad_batches``),
        Lightning's features, the automatic loop runs instead. Where nothing listens to Lightning's step
        hooks the step skips their wrappers too (:mod:`vae_lab.model.direct_step`) and may take several
        steps per batch (:mod:`vae_lab.model.multi_step`). Outside a Trainer it only returns the loss."""
        trainer = self._trainer
        if trainer is None:
            return True
        return bool(trainer.gradient_clip_val) or trainer.accumulate_grad_batches != 1

    @automatic_optimization.setter
    def automatic_optimization(self, value: bool) -> None:  # LightningModule's __init__ sets it
        pass

    @direct_step.signature_once
    def training_step(self, x: Tensor | StepBatches, batch_idx: int) -> Tensor:
        if type(x) is StepBatches:  # one optimizer step per minibatch (steps_per_batch)
            return multi_step.run(self, x, batch_idx, self._train_step)
        return self._train_step(x)

    def _train_step(self, x: Tensor) -> Tensor:
        if self._compiled_loss is None:
            loss, terms = self.training_loss(x)
        elif self.kl_warmup_steps > 0:  # the weight as a tensor: its change recompiles nothing
            beta = torch.tensor(self.kl_weight(), dtype=x.dtype, device=x.device)
            loss, terms = self._compiled_loss(x, beta)
        else:
            loss, terms = self._compiled_loss(x)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} at step {self.global_step}")
        if step_metrics.is_logging_step(self):  # only the steps the loggers write
            self._log_terms("train", terms, x.shape[0], on_step=True)
        if not self.automatic_optimization:
            optimizer = self.optimizers()
            if self._direct_step:  # the same step without Lightning's wrappers (nothing listens to them)
                direct_step.step(self, optimizer, loss)
                return loss.detach()
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            optimizer.step()  # runs on_before_optimizer_step (the prior's freeze) and counts the step
            return loss.detach()
        return loss

    def on_train_start(self) -> None:
        self._direct_step = not self.automatic_optimization and direct_step.applies(self.trainer, self)
        self._multi_step = multi_step.plan(self.trainer, self, self.steps_per_batch, self._direct_step)

    def on_train_epoch_start(self) -> None:
        multi_step.start_epoch(self.trainer, self._multi_step)

    def kl_weight(self) -> float:
        """beta of the KL warm-up at the current optimizer step (1.0 without warm-up)."""
        if self.kl_warmup_steps <= 0:
            return 1.0
        return min(1.0, self.global_step / self.kl_warmup_steps)

    def validation_step(self, x: Tensor, batch_idx: int) -> None:
        q = self.q(x)
        terms = self.elbo(x, q=q)
        self._log_terms("val", terms, x.shape[0])
        self._log_clip_shares("val", q, x.shape[0])
        self._update_perplexity("val", x, terms["elbo"])

    def test_step(self, x: Tensor, batch_idx: int) -> None:
        split = self.test_split
        q = self.q(x)
        terms = self.elbo(x, q=q)
        self._log_terms(split, terms, x.shape[0])
        self._log_clip_shares(split, q, x.shape[0])
        self._update_perplexity(split, x, terms["elbo"])
        ll = self.iw_log_likelihood(x)
        if self.per_example is not None:  # each row's terms, (B, 4), in order
            columns = (terms["elbo"], terms["recon"], terms["kl"], -ll)
            self.per_example.append(torch.stack([c.detach().reshape(-1) for c in columns], 1).cpu())
        self.log(f"{split}/nll", -ll.mean(), batch_size=x.shape[0], on_epoch=True, sync_dist=True)

    def on_validation_epoch_start(self) -> None:
        self._perplexity_sums.pop("val", None)

    def on_test_epoch_start(self) -> None:
        self._perplexity_sums.pop(self.test_split, None)

    def on_validation_epoch_end(self) -> None:
        self._log_perplexity("val")

    def on_test_epoch_end(self) -> None:
        self._log_perplexity(self.test_split)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Prior burn-in: a None gradient makes torch's optimizers skip the parameter entirely (no step,
        # no moment update), like leaving it out of TensorFlow's apply_gradients in the paper's code.
        if self.global_step < self.prior_freeze_steps:
            for p in self._prior_params:
                p.grad = None

    def _update_perplexity(self, split: str, x: Tensor, elbo: Tensor) -> None:
        if self.counts:
            perplexity.accumulate(self._perplexity_sums, split, elbo.detach(), x)

    def _log_perplexity(self, split: str) -> None:
        sums = self._perplexity_sums.pop(split, None)
        if sums is None:
            return
        total, documents = self.trainer.strategy.reduce(sums, reduce_op="sum")  # over processes (DDP)
        if documents > 0:
            self.log(f"{split}/perplexity", (total / documents).exp())

    def _log_terms(
        self, split: str, terms: dict[str, Tensor], batch_size: int, on_step: bool = False
    ) -> None:
        names = ("elbo", "recon", "kl")
        if on_step:  # a training step's row, straight to the loggers where it can
            step_row = {f"{split}/{name}": terms[name].mean() for name in names}
            if step_metrics.log_step(self, step_row, prog_bar=(f"{split}/elbo",)):
                return
        for name in names:
            self.log(
                f"{split}/{name}",
                terms[name].detach().mean(),
                batch_size=batch_size,
                on_step=on_step,
                on_epoch=not on_step,
                prog_bar=name == "elbo",
                sync_dist=not on_step,  # DDP: epoch metrics averaged over the ranks
            )

    def _log_clip_shares(self, split: str, q: Distribution, batch_size: int) -> None:
        """``{split}/clip_low``, ``{split}/clip_high``: shares of the posterior's clipped parameters
        (concentrations, rates) at the low and high end of the head's clip range, over the epoch."""
        shares = self.posterior.clip_shares(q)
        if shares is None:
            return
        for name, share in zip(("clip_low", "clip_high"), shares, strict=True):
            self.log(f"{split}/{name}", share, batch_size=batch_size, on_epoch=True, sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.parameters())

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        step_metrics.save_loggers(self.trainer)  # the training rows before a checkpoint, on disk before it
        if self.run_config is not None:  # what `vae-lab eval` rebuilds this model from
            checkpoint[run_checkpoint.KEY] = run_checkpoint.record(self.run_config)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        direct_step.step_counters(checkpoint, manual=not self.automatic_optimization)


def _check_optimizer(factory: Callable[..., torch.optim.Optimizer]) -> None:
    """Build the optimizer once on a dummy parameter so a bad setting (lr < 0) fails at start-up."""
    try:
        factory([nn.Parameter(torch.zeros(1))])
    except (ValueError, TypeError, RuntimeError) as err:
        raise ConfigError("optimizer", str(err), detail=f"optimizer: {err}") from err
