"""The command-line side of resuming: where ``resume=`` points Hydra (:func:`resolve_resume`), and the
command that continues a stopped run (:class:`ContinueCommand`), printed on its last line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vae_lab.preflight import override_value
from vae_lab.runs.locate import KEY, ResumeError, check_run, find_run, find_sweep, without_resume
from vae_lab.runs.summary import read_summary


@dataclass
class Resolved:
    """What ``resume=`` settles before Hydra starts: ``args``, the overrides to append (Hydra's run or
    sweep directory, and a run's own overrides when none were given); or ``completed``, a line saying
    that the run completed already (then nothing runs); ``notice``, a line to print before it starts."""

    args: list[str] = field(default_factory=list)
    completed: str | None = None
    notice: str | None = None


def _nothing_in(path: Path) -> bool:
    """Whether ``path`` holds nothing yet: missing, or an empty directory."""
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def hydra_value(path: Path) -> str:
    """A path as an override value: quoted where Hydra's grammar would read its characters otherwise."""
    text = str(path)
    return text if all(c.isalnum() or c in "/._-+~" for c in text) else "'" + text.replace("'", "\\'") + "'"


def resolve_resume(overrides: list[str], multirun: bool) -> Resolved:
    """Point Hydra at the run (or sweep) that ``resume=...`` continues. Raises :class:`ResumeError` when
    there is none. With ``resume=<dir>`` and no other task overrides, the run's own are taken over.

    ``resume=true`` with an explicit ``hydra.run.dir`` (``hydra.sweep.dir``) that holds nothing yet
    starts the run (sweep) there, with a notice: so one command continues a multi-part reproduction
    whose later parts never started (``make reproduce-... ARGS=resume=true``)."""
    value = override_value(overrides, KEY)
    if value is None or value is False:
        return Resolved()
    given = [o for o in overrides if not o.startswith(("hydra.", "hydra/", f"{KEY}="))]
    dir_key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    explicit = override_value(overrides, dir_key)
    if value is not True and explicit is not None and Path(str(value)) != Path(str(explicit)):
        raise ResumeError(f"{KEY}={value} and {dir_key}={explicit} name different directories")
    where = Path(str(value)) if value is not True else Path(str(explicit)) if explicit is not None else None
    if value is True and where is not None and _nothing_in(where):
        what = "sweep" if multirun else "run"
        return Resolved(notice=f"{KEY}: nothing in {where} yet; starting the {what} there")
    if multirun:
        found = find_sweep(given, where)
    else:
        found = find_run(given) if where is None else check_run(where, given)
        if found.completed:
            summary = read_summary(found.path)
            best = summary.best_score if summary is not None else None
            score = f"best val/elbo {best:.4f}; " if best is not None else ""
            return Resolved(completed=f"{found.path} completed already; {score}nothing to resume")
    extra = [] if explicit is not None else [f"{dir_key}={hydra_value(found.path)}"]
    if not given:
        extra = without_resume(found.overrides) + extra
    return Resolved(args=extra)


@dataclass(frozen=True)
class ContinueCommand:
    """The `vae-lab train` command that continues a run stopped by a signal: the command as given
    (``args``: flags and overrides; ``overrides``: the overrides alone), with ``resume=true`` and, for a
    sweep, its directory. A command with ``resume=<dir>`` continues it again as it is."""

    args: tuple[str, ...]
    overrides: tuple[str, ...]
    multirun: bool = False

    def for_run(self, run_dir: Path) -> list[str]:
        return self.for_sweep(_sweep_dir(run_dir)) if self.multirun else self.for_sweep(None)

    def for_sweep(self, sweep_dir: Path | None) -> list[str]:
        """The command that continues the sweep in ``sweep_dir`` (a single run: None)."""
        value = override_value(list(self.overrides), KEY)
        if value not in (None, False, True):
            return ["vae-lab", "train", *self.args]
        args = without_resume(self.args)
        if self.multirun and override_value(list(self.overrides), "hydra.sweep.dir") is None:
            args.append(f"hydra.sweep.dir={hydra_value(sweep_dir)}")
        return ["vae-lab", "train", *args, f"{KEY}=true"]


def _sweep_dir(run_dir: Path) -> Path:
    """The sweep directory of the job running now (its run directory's parent outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf.errors import OmegaConfBaseException

    try:
        return Path(str(HydraConfig.get().sweep.dir))
    except (ValueError, OmegaConfBaseException):
        return run_dir.parent
