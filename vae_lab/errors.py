"""Errors that reach the user as one line (the CLI prints them without a traceback): :class:`ConfigError`,
the one kind of error a bad setting raises, naming its key; the checks that raise it; :func:`one_line`,
the one formatter of an error as a line."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A configuration value that is out of range, of the wrong type or an impossible combination.

    ``key`` is the config key as the user types it (``model.latent_dim``) or the argument name when the
    object does not know where it sits in the config (the CLI then prefixes the config node).
    """

    def __init__(self, key: str, allowed: str, value: Any = None, *, detail: str | None = None):
        self.key, self.allowed, self.value = key, allowed, value
        message = detail or f"{key}={value!r} is not allowed; {allowed}"
        super().__init__(message)


def check(condition: bool, key: str, allowed: str, value: Any) -> None:
    """Raise :class:`ConfigError` naming ``key`` and what is allowed unless ``condition`` holds."""
    if not condition:
        raise ConfigError(key, allowed, value)


def positive_int(key: str, value: Any) -> int:
    check(
        isinstance(value, int) and not isinstance(value, bool) and value >= 1,
        key,
        "expected an integer >= 1",
        value,
    )
    return value


def positive_float(key: str, value: Any) -> float:
    check(
        isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0,
        key,
        "expected a number > 0",
        value,
    )
    return float(value)


#: lines of Hydra's and OmegaConf's messages that say where an error arose, not what it is (the key is
#: named in the message itself, or by the caller)
_NOISE = ("Set the environment variable HYDRA_FULL_ERROR", "full_key:", "object_type=", "reference_type=")


def one_line(err: BaseException | str, limit: int | None = None, sep: str = "; ") -> str:
    """An error (or a message) as the one line the CLI prints: its non-empty lines, whitespace collapsed,
    joined with ``sep``, without Hydra's location lines; ``limit`` keeps the first lines only. An
    exception without a message gives its type's name."""
    text = err if isinstance(err, str) else str(err)
    lines = [" ".join(ln.split()) for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(_NOISE)][:limit]
    if lines:
        return sep.join(lines)
    return "" if isinstance(err, str) else type(err).__name__
