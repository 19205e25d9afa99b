r"""The gradient-variance probe: how noisy is the gradient that training follows?

Every ``every_n_steps`` optimizer steps, at the current parameters theta and on one fixed batch x,
the probe draws M independent estimates g_1, ..., g_M of the gradient of the training objective

.. math:: L(\theta) = -\frac{1}{B}\sum_{b=1}^{B} \mathrm{surrogate}_b(\theta),

exactly what a training step differentiates: the loss of ``model.training_loss(x)``
(:meth:`vae_lab.model.vae.VAE.training_loss`), where surrogate_b estimates
E_q log p(x_b|z) - beta KL(q(z|x_b) || p(z)) with beta = ``model.kl_weight()``, the KL warm-up's weight at
the current step (1 without warm-up). Each estimate draws fresh random numbers. Per parameter group, with
P coordinates, sample mean :math:`\bar g_j` and unbiased sample variance :math:`s_j^2` of coordinate j
over the M estimates, it reports

.. math::

    \mathrm{var} = \frac{1}{P}\sum_{j=1}^{P} s_j^2, \qquad
    \mathrm{snr} = \sqrt{\frac{\max\bigl(\|\bar g\|^2 - \frac{1}{M}\sum_j s_j^2,\ 0\bigr)}{\sum_j s_j^2}}.

``var`` is the per-coordinate variance of one gradient estimate, averaged over the group's coordinates
(unbiased for the average true variance). ``snr`` is the signal-to-noise ratio of the group's gradient
*vector*: the norm of the expected gradient over the root of the total variance of one estimate,
:math:`\|E g\| / \sqrt{\mathrm{tr\,Cov}\,g}`. Its numerator is debiased, since
:math:`E\|\bar g\|^2 = \|E g\|^2 + \mathrm{tr\,Cov}\,g / M`; without that correction an estimator with
noise only would show a spurious SNR of about :math:`1/\sqrt{M}`. It is a ratio of sums over the
group, so coordinates whose gradient is always zero (dead ReLU units) do not produce 0/0; a group whose
gradient is deterministic (zero variance) has ``snr = inf``.

The variance of a mini-batch gradient is what Figurnov, Mohamed & Mnih ("Implicit Reparameterization
Gradients", NeurIPS 2018) compare between estimators; the per-parameter SNR view follows Rainforth et al.
("Tighter Variational Bounds are Not Necessarily Better", ICML 2018), here pooled over a group.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor, nn

from vae_lab.data.step_batches import step_args
from vae_lab.errors import check, positive_int
from vae_lab.probes.moments import GradientMoments, gradient_moments, parameter_groups
from vae_lab.probes.rng import isolated, seed_generators
from vae_lab.seeds import derived_seed

log = logging.getLogger(__name__)


class GradientVarianceProbe(pl.Callback):
    """Log the variance and SNR of the training gradient, per parameter group, during training.

    Every ``every_n_steps`` optimizer steps (at the parameters after that many updates), on one fixed
    batch of ``batch_size`` validation rows (drawn once, with ``seed``, from the first batches of a fresh
    ``datamodule.val_dataloader()``; from the training batch of the first measurement where there is
    no validation data), the probe
    draws ``n_estimates`` independent gradient estimates of the training objective
    (``pl_module.training_loss(x)``, so with the KL warm-up weight of the step) and logs, through
    every logger of the trainer at step ``trainer.global_step``:

    - ``grad/var/<group>`` and ``grad/snr/<group>`` for the run's own estimator, and
    - ``grad/var/<group>/<name>`` and ``grad/snr/<group>/<name>`` for each estimator ``name`` in
      ``compare`` (options of the ``estimator`` config group, built from ``conf/estimator/<name>.yaml``
      and swapped in for the measurement, same parameters and batch). Estimators that do not support the
      posterior family are skipped, with one warning at the start.

    Groups: ``encoder`` (encoder network and posterior head), ``decoder`` (decoder and likelihood),
    ``prior`` (only when the prior has trainable parameters). Definitions of var and snr: see
    :mod:`vae_lab.probes.grad_variance`.

    Training is not changed: gradients come from :func:`torch.autograd.grad` (``.grad`` tensors and the
    optimizer are not touched); torch's global CPU (and CUDA) random state is saved before and restored
    after, the probe drawing from its own stream seeded by (``seed``, step); the run's estimator is put
    in eval mode for the draws (the score function's moving-average baseline is then used, not updated)
    and every buffer of the model is restored afterwards. Comparison estimators with state start from
    the run estimator's state if they are of the same class, otherwise from one training-mode forward
    pass on the probe batch (which sets a moving-average baseline to the batch's mean objective).

    Cost: (1 + len(compare)) * n_estimates forward and backward passes on ``batch_size`` rows every
    ``every_n_steps`` steps, on global rank 0 only. The time spent is logged at the end of training.

    Args:
        enabled: ``False`` turns the probe off (nothing is measured or logged).
        every_n_steps: measure when ``trainer.global_step`` is a multiple of this.
        n_estimates: M, independent gradient estimates per measurement (>= 2).
        batch_size: rows of the fixed batch (the training batch size makes the numbers those of a
            training step); fewer if the validation set is smaller.
        compare: names of other estimators to measure at the same parameters and batch.
        seed: seeds the choice of the batch and the probe's random numbers.
    """

    multi_step_hooks = "each"  #: measures after any step, also within a batch (vae_lab.model.multi_step)

    def __init__(
        self,
        enabled: bool = True,
        every_n_steps: int = 50,
        n_estimates: int = 10,
        batch_size: int = 100,
        compare: Sequence[str] = (),
        seed: int = 0,
    ) -> None:
        super().__init__()
        check(isinstance(enabled, bool), "enabled", "true or false", enabled)
        self.enabled = enabled
        self.every_n_steps = positive_int("every_n_steps", every_n_steps)
        self.n_estimates = positive_int("n_estimates", n_estimates)
        check(n_estimates >= 2, "n_estimates", "an integer >= 2 (a variance needs two)", n_estimates)
        self.batch_size = positive_int("batch_size", batch_size)
        check(isinstance(seed, int) and not isinstance(seed, bool), "seed", "an integer", seed)
        self.seed = seed
        if compare is None:
            compare = []
        elif isinstance(compare, str):
            compare = [compare]
        compare = list(OmegaConf.to_object(compare) if OmegaConf.is_config(compare) else compare)
        from vae_lab.config import group_options

        options = group_options("estimator")
        for name in compare:
            check(name in options, "compare", f"a list of estimator options: {', '.join(options)}", name)
        check(len(set(compare)) == len(compare), "compare", "names without repetitions", compare)
        self.compare = compare
        self.seconds = 0.0  # time spent measuring
        self.measurements = 0
        self._estimators: dict[str, tuple[nn.Module, dict[str, Tensor]]] = {}
        self._batch: Tensor | None = None
        self._last_step = -1

    @property
    def compared(self) -> list[str]:
        """The comparison estimators measured: ``compare`` less those skipped (after ``setup``) or dropped."""
        return list(self._estimators) if self._estimators or not self.compare else []

    # setup ----------------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not self.enabled or stage != "fit" or self._estimators or not self.compare:
            return
        from vae_lab.config import CONF_DIR

        head = getattr(pl_module, "posterior", None)
        family = getattr(head, "family", None)
        q = None  # an example posterior: estimators state what they support in terms of the distribution
        if head is not None and hasattr(head, "param_dim"):
            with torch.no_grad():
                q = head(torch.zeros(1, head.param_dim, dtype=pl_module.dtype, device=pl_module.device))
        skipped = []
        for name in self.compare:
            estimator = instantiate(OmegaConf.load(CONF_DIR / "estimator" / f"{name}.yaml"))
            if q is not None and hasattr(estimator, "supports") and not estimator.supports(q):
                skipped.append(name)
                continue
            self._estimators[name] = (estimator, {k: v.clone() for k, v in estimator.state_dict().items()})
        if skipped:
            log.warning(
                "grad_variance probe: skipping compare=%s (no support for the %s posterior)", skipped, family
            )

    def _probe_batch(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any) -> Tensor:
        if self._batch is None:
            rows = self._validation_rows(trainer)
            if rows is None:
                rows = batch if isinstance(batch, Tensor) else batch[0]
                log.info(
                    "grad_variance probe: no validation data, using the training batch of step %d",
                    trainer.global_step,
                )
            rows = rows.detach()
            if len(rows) < self.batch_size:
                log.warning(
                    "grad_variance probe: batch_size=%d but only %d rows available; using %d",
                    self.batch_size,
                    len(rows),
                    len(rows),
                )
            # a CPU generator on purpose, whatever the model's device: the same rows on every machine
            generator = torch.Generator(device="cpu").manual_seed(derived_seed(self.seed, 1))
            pick = torch.randperm(len(rows), generator=generator, device=generator.device)
            self._batch = rows[pick[: self.batch_size].sort().values.to(rows.device)].clone()
        x = self._batch.to(pl_module.device)
        return trainer.precision_plugin.convert_input(x)

    def _validation_rows(self, trainer: pl.Trainer) -> Tensor | None:
        """The first validation batches, at least ``batch_size`` rows if there are that many."""
        datamodule = getattr(trainer, "datamodule", None)
        loader = None
        if datamodule is not None and hasattr(datamodule, "val_dataloader"):
            try:
                loader = datamodule.val_dataloader()  # a fresh loader: Lightning's own keeps its state
            except (NotImplementedError, AttributeError, TypeError):
                loader = None
        if loader is None:
            return None
        parts, n = [], 0
        for part in loader:
            part = part if isinstance(part, Tensor) else part[0]
            parts.append(part)
            n += len(part)
            if n >= self.batch_size:
                break
        return torch.cat(parts) if parts else None

    # measuring ------------------------------------------------------------------------------------
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if not self.enabled or step % self.every_n_steps or step == self._last_step:
            return
        if not trainer.is_global_zero:
            return
        batch, _ = step_args(batch, batch_idx, end=True)  # one step of several in a Lightning batch
        self._last_step = step  # with gradient accumulation a step spans several batches
        started = time.perf_counter()
        metrics = self.measure(trainer, pl_module, batch)
        metrics["epoch"] = trainer.current_epoch  # as Lightning adds to its own rows
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        self.seconds += time.perf_counter() - started
        self.measurements += 1

    def measure(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any = None
    ) -> dict[str, float]:
        """One measurement at the current parameters: ``{"grad/var/encoder": ..., ...}``."""
        metrics: dict[str, float] = {}
        for suffix, moments in self.moments(trainer, pl_module, batch).items():
            metrics.update(_named(moments, suffix))
        return metrics

    def moments(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any = None
    ) -> dict[str, dict[str, GradientMoments]]:
        """The gradient moments of one measurement, ``{suffix: {group: GradientMoments}}``: suffix ``""``
        for the run's estimator, ``"/<name>"`` for each comparison estimator. The draws of estimator number
        ``index`` (0 the run's own, then the comparison estimators in order) follow a seeding of torch's
        generator with ``derived_seed(seed, step, index)``."""
        x = self._probe_batch(trainer, pl_module, batch)
        groups = parameter_groups(pl_module)
        step = trainer.global_step
        out: dict[str, dict[str, GradientMoments]] = {}
        own = pl_module.estimator
        with isolated(pl_module, torch.device(pl_module.device)):
            loss_fn = self._loss_fn(trainer, pl_module, x)
            own.eval()
            seed_generators(pl_module.device, derived_seed(self.seed, step, 0))
            out[""] = gradient_moments(loss_fn, groups, self.n_estimates)
            for index, name in enumerate(list(self._estimators), start=1):
                estimator, initial = self._estimators[name]
                seed_generators(pl_module.device, derived_seed(self.seed, step, index))
                try:
                    with _swapped_estimator(pl_module, estimator):
                        self._prepare(estimator, initial, own, pl_module, x)
                        moments = gradient_moments(loss_fn, groups, self.n_estimates)
                except (ValueError, RuntimeError) as err:
                    log.warning("grad_variance probe: dropping compare estimator %s: %s", name, err)
                    del self._estimators[name]
                    continue
                out[f"/{name}"] = moments
        return out

    @staticmethod
    def _loss_fn(trainer: pl.Trainer, pl_module: pl.LightningModule, x: Tensor) -> Callable[[], Tensor]:
        """The training objective on ``x``: the model's own ``training_loss``, read at each call, so a
        swapped-in estimator and the current KL warm-up weight are the ones used."""

        def loss() -> Tensor:
            with trainer.precision_plugin.train_step_context():
                return pl_module.training_loss(x)[0]

        return loss

    @staticmethod
    def _prepare(
        estimator: nn.Module,
        initial: dict[str, Tensor],
        own: nn.Module,
        pl_module: pl.LightningModule,
        x: Tensor,
    ) -> None:
        """Move a comparison estimator to the model's device and dtype and give its state a start."""
        estimator.to(device=pl_module.device)
        estimator.to(dtype=pl_module.dtype)
        if initial:
            if type(estimator) is type(own):
                estimator.load_state_dict(own.state_dict())
            else:
                estimator.load_state_dict(initial)
                estimator.train()
                with torch.no_grad():
                    pl_module.training_loss(x)  # one training-mode pass: sets a moving-average baseline
        estimator.eval()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.enabled and self.measurements:
            log.info(
                "grad_variance probe: %d measurements, %.2f s in all (%.3f s each)",
                self.measurements,
                self.seconds,
                self.seconds / self.measurements,
            )


def _named(moments: dict[str, GradientMoments], suffix: str) -> dict[str, float]:
    out = {}
    for group, m in moments.items():
        out[f"grad/var/{group}{suffix}"] = m.variance
        out[f"grad/snr/{group}{suffix}"] = m.snr
    return out


@contextmanager
def _swapped_estimator(pl_module: nn.Module, estimator: nn.Module) -> Iterator[None]:
    own = pl_module.estimator
    pl_module.estimator = estimator
    try:
        yield
    finally:
        pl_module.estimator = own
