"""Argument checks of the data modules: a bad value is a ConfigError that names its key."""

from __future__ import annotations

from typing import Any

import numpy as np

from vae_lab.errors import check


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if ok and minimum is not None and value < minimum:
        ok = False
    if ok and maximum is not None and value > maximum:
        ok = False
    lo = "" if minimum is None else f" >= {minimum}"
    hi = "" if maximum is None else f"{' and' if lo else ''} <= {maximum}"
    check(ok, name, f"expected an integer{lo}{hi}", value)
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    check(isinstance(value, (bool, np.bool_)), name, "expected true or false", value)
    return bool(value)
