"""From a composed config to the objects of a run: one :func:`build` for `vae-lab train`, `vae-lab eval`,
the benchmarks and the tests.

The model's config holds the whole VAE: posterior, prior and estimator are composed into it
(``model.posterior``, ``model.prior``, ``model.estimator``; users still choose them with
``posterior=vonmises estimator=implicit``), so ``instantiate(cfg.model, input_dim=...)`` builds it all.
A bad value surfaces as a :class:`~vae_lab.errors.ConfigError` that names the key a user sets.
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from vae_lab import checkpoint
from vae_lab.errors import ConfigError, check, one_line, positive_int
from vae_lab.launchers import ray_threads

#: config groups composed into the model; the VAE names them in its errors (``estimator``: unsupported
#: for this posterior), which users fix by choosing another option (``estimator=implicit``)
MODEL_GROUPS = ("posterior", "prior", "estimator")


def build(cfg: DictConfig, datamodule: Any | None = None) -> tuple[Any, Any]:
    """The data module (``cfg.data``, unless one is given) and the VAE (``cfg.model``, with the data's
    ``input_dim``). The model remembers ``cfg`` and stores it in its checkpoints
    (:mod:`vae_lab.checkpoint`), so that `vae-lab eval` can rebuild it from a checkpoint alone."""
    # taken first: instantiating resolves interpolations that other nodes point to (model.prior is
    # ${natural_prior}) in place, and the checkpoint keeps them as the run had them
    run_config = checkpoint.run_config(cfg)
    if datamodule is None:
        datamodule = instantiate_key(cfg, "data")
    model = instantiate_key(cfg, "model", input_dim=datamodule.input_dim)
    model.run_config = run_config
    model.steps_per_batch = positive_int("steps_per_batch", cfg.get("steps_per_batch", 1))
    return datamodule, model


def configure_torch(cfg: DictConfig) -> None:
    """The torch settings of a run: threads (``threads``), the precision check, no argument validation
    in torch.distributions (the heads clip their parameters into range already), and subnormal floats
    flushed to zero on the CPU (``flush_denormal``, default true; checkpoints of older runs lack the key).

    Why the flush: Adam's moment estimates of a weight whose gradient stays zero (a word that no batch
    contains, in the LDA encoder's first layer) shrink geometrically, by 0.9 and 0.999 a step, into the
    subnormal range; x86 CPUs compute on subnormals about 40 times slower (fused Adam over the LDA
    encoder: 0.6 ms a step with normal numbers, 25 ms with subnormals). The LDA preset slowed down
    sixfold after about 90,000 steps. Flushed, such values become 0, a change below 1.2e-38."""
    set_threads(cfg.get("threads"))
    check(cfg.precision in (32, 64), "precision", "32 or 64", cfg.precision)
    torch.distributions.Distribution.set_default_validate_args(False)
    torch.set_flush_denormal(bool(cfg.get("flush_denormal", True)))


def instantiate_key(cfg: DictConfig, key: str, **kwargs: Any) -> Any:
    """``instantiate`` the node at the dotted ``key`` of ``cfg``; a bad value raises a ConfigError
    naming its full config key (``model.posterior.min_scale``, or ``model.latent_dim`` for a value
    that interpolates it)."""
    node = OmegaConf.select(cfg, key, throw_on_missing=True)
    try:
        return instantiate(node, **kwargs)
    except (InstantiationException, ConfigError, ValueError, TypeError) as err:
        raise config_error(cfg, key, err) from err


def config_error(cfg: DictConfig, key: str, err: BaseException) -> ConfigError:
    """``err``, raised while instantiating ``cfg``'s node ``key``, as a ConfigError naming the user's key."""
    cause = _root_cause(err)
    where = _failed_node(err) or key  # the node whose constructor raised, e.g. model.posterior
    if not isinstance(cause, ConfigError):
        return ConfigError(where, "", detail=f"{where}: {one_line(cause)}")
    if where == "model" and cause.key.split(".")[0] in MODEL_GROUPS:
        full_key = cause.key  # a group choice the model refuses: `estimator=...`
    else:
        full_key = _source_key(cfg, where, cause.key)
    message = str(cause)  # "key=value is not allowed; ..." or "key: ...": named by the user's key
    if message.startswith(cause.key):
        message = full_key + message[len(cause.key) :]
    return ConfigError(full_key, cause.allowed, cause.value, detail=message)


def _root_cause(err: BaseException) -> BaseException:
    while err.__cause__ is not None and not isinstance(err, ConfigError):
        err = err.__cause__
    return err


def _failed_node(err: BaseException) -> str | None:
    """The config node Hydra was instantiating when ``err`` arose (its ``full_key: ...`` line)."""
    found = None
    while err is not None:
        if isinstance(err, InstantiationException):
            match = re.search(r"^full_key: (\S+)$", str(err), flags=re.MULTILINE)
            found = match.group(1) if match else found
        err = err.__cause__
    return found


def _source_key(cfg: DictConfig, where: str, key: str) -> str:
    """The key a user sets: ``model.posterior.latent_dim`` is ``${model.latent_dim}``, so name that."""
    node = OmegaConf.select(cfg, where)
    head, _, rest = key.partition(".")
    if isinstance(node, DictConfig) and head in node and OmegaConf.is_interpolation(node, head):
        inner = str(OmegaConf.to_container(node, resolve=False)[head]).strip("${}")
        if inner.replace(".", "").replace("_", "").isalnum():
            return inner + (f".{rest}" if rest else "")
    return f"{where}.{key}"


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity set where the OS has one (a SLURM allocation, a
    cgroup's or ``taskset``'s CPUs), not every core of the node as ``os.cpu_count()`` counts them."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity on this OS (macOS, Windows)
        return os.cpu_count() or 1


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op threads: ``threads`` (None: every CPU the process may use, :func:`usable_cpus`),
    and in a joblib sweep at most those CPUs / n_jobs, so parallel jobs share the cores instead of
    oversubscribing them; a Ray job runs as many threads as the CPUs Ray assigned it
    (``hydra.launcher.ray.remote.num_cpus``)."""
    from hydra.core.hydra_config import HydraConfig

    cpus = usable_cpus()
    check(
        threads is None or (isinstance(threads, int) and threads >= 1),
        "threads",
        "an integer >= 1, or null for all cores",
        threads,
    )
    limit = threads or cpus
    try:
        hc = HydraConfig.get()
        if hc.mode == RunMode.MULTIRUN and "joblib" in str(hc.launcher.get("_target_", "")):
            n_jobs = int(hc.launcher.get("n_jobs", -1))
            limit = min(limit, max(1, cpus // (cpus if n_jobs < 0 else max(1, n_jobs))))
    except ValueError:  # not inside a Hydra job
        pass
    limit = ray_threads(limit)  # a Ray job: as many threads as the CPUs Ray assigned it
    torch.set_num_threads(limit)
