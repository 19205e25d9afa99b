"""Values of the documented keys, checked on the composed config before any job starts (``preflight``):
a wrong type or an out-of-range value gets one line that names the key and what is allowed, instead of a
traceback from inside a job (``int('abc')``, Lightning's bare ``AssertionError``, torch's "Invalid
learning rate" under the optimizer's node).

Objects check their own arguments again when built (:class:`vae_lab.errors.ConfigError`); this table is
the part that must fail before a sweep launches anything. Keys that a config does not have are skipped.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

Rule = tuple[Callable[[Any], bool], str]


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def int_at_least(lo: int, *, null: bool = False) -> Rule:
    return (lambda x: (null and x is None) or (_int(x) and x >= lo)), (
        f"expected an integer >= {lo}" + (", or null" if null else "")
    )


def positive_number() -> Rule:
    return (lambda x: _number(x) and x > 0), "expected a number > 0"


def fraction_or_count() -> Rule:
    """Lightning's limit_*_batches: a fraction in [0, 1] or a number of batches."""
    return (
        lambda x: x is None or (_int(x) and x >= 0) or (_number(x) and 0.0 <= float(x) <= 1.0)
    ), "expected a fraction in [0, 1] or a whole number of batches >= 0"


BOOL: Rule = (lambda x: isinstance(x, bool)), "expected true or false"

#: documented key -> (check, what is allowed)
RULES: dict[str, Rule] = {
    "seed": int_at_least(0),
    "threads": int_at_least(1, null=True),
    "precision": ((lambda x: x in (32, 64) and _int(x)), "expected 32 or 64"),
    "test": BOOL,
    "flush_denormal": BOOL,
    "compile": BOOL,
    "steps_per_batch": int_at_least(1),
    "trainer.max_epochs": int_at_least(-1, null=True),
    "trainer.max_steps": int_at_least(-1),
    "trainer.min_epochs": int_at_least(0, null=True),
    "trainer.check_val_every_n_epoch": int_at_least(1, null=True),
    "trainer.log_every_n_steps": int_at_least(1),
    "trainer.num_nodes": int_at_least(1),
    "trainer.limit_train_batches": fraction_or_count(),
    "trainer.limit_val_batches": fraction_or_count(),
    "trainer.limit_test_batches": fraction_or_count(),
    "trainer.gradient_clip_val": ((lambda x: x is None or (_number(x) and x >= 0)), "expected a number >= 0"),
    "model.latent_dim": int_at_least(1),
    "model.n_samples": int_at_least(1),
    "model.iw_samples": int_at_least(1),
    "model.iw_chunk": int_at_least(1),
    "model.kl_warmup_steps": int_at_least(0),
    "model.analytic_kl": BOOL,
    "model.optimizer.lr": positive_number(),
    "model.estimator.B": int_at_least(0),
    "model.prior.freeze_steps": int_at_least(0),
    "data.batch_size": int_at_least(1),
    "data.eval_batch_size": int_at_least(1),
    "data.seed": int_at_least(0),
    "data.threshold": int_at_least(1),
    "data.val_size": int_at_least(1),
    "data.test_size": int_at_least(1),
    "data.input_noise": ((lambda x: _number(x) and 0 <= x < 1), "expected a probability in [0, 1)"),
    "hydra.launcher.n_jobs": (
        (lambda x: x is None or (_int(x) and x != 0)),
        "expected an integer other than 0",
    ),
    "hydra.launcher.timeout_min": int_at_least(1),
    "hydra.launcher.cpus_per_task": int_at_least(1, null=True),
    "hydra.launcher.gpus_per_task": int_at_least(0, null=True),
    "hydra.launcher.gpus_per_node": int_at_least(0, null=True),
    "hydra.launcher.tasks_per_node": int_at_least(1),
    "hydra.launcher.nodes": int_at_least(1),
    "hydra.launcher.mem_gb": int_at_least(1, null=True),
    "hydra.launcher.ray.remote.num_cpus": ((lambda x: _number(x) and x >= 0), "expected a number >= 0"),
    "hydra.launcher.ray.remote.num_gpus": ((lambda x: _number(x) and x >= 0), "expected a number >= 0"),
}

_MISSING = object()


def _value(cfg: DictConfig, key: str) -> Any:
    """The resolved value at ``key``, or _MISSING when the config lacks it or it cannot be resolved here
    (an interpolation that needs a running job, such as ``${hydra:...}``)."""
    try:
        return OmegaConf.select(cfg, key, default=_MISSING, throw_on_resolution_failure=True)
    except OmegaConfBaseException:
        return _MISSING


def check_settings(cfg: DictConfig) -> str | None:
    """The first documented key whose value is not allowed, as one line (``key=value is not allowed;
    expected ...``), or None."""
    for key, (ok, allowed) in RULES.items():
        value = _value(cfg, key)
        if value is _MISSING:
            continue
        if not ok(value):
            return f"{key}={value!r} is not allowed; {allowed}"
    return None
