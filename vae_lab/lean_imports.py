"""Start-up: Lightning without the SciPy and matplotlib imports that torchmetrics makes for itself.

Lightning imports torchmetrics (``Metric`` in its type hints and its result collection), and
torchmetrics, when it finds them installed, imports ``scipy.signal`` (a compatibility patch for a
speech metric) and ``matplotlib.pyplot`` (its ``.plot()`` methods) at import time: about a second of
every `vae-lab train` job's start-up, for nothing vae-lab uses. :func:`install` (run by
``vae_lab/__init__.py``) adds an import hook that, while torchmetrics itself is imported, lets its
checks report SciPy and matplotlib as absent; the checks answer truthfully again afterwards, and
torchmetrics' plotting module gets matplotlib on first use (without its style context). vae-lab's own
imports of SciPy and matplotlib are untouched. ``tests/test_startup.py`` guards this.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Any

#: what torchmetrics' import-time checks report as absent while torchmetrics is imported
SKIPPED = ("scipy", "matplotlib")


class _LazyModule:
    """Stands for a module that is imported on the first attribute access."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


class _LeanLoader(importlib.abc.Loader):
    """torchmetrics' own loader, its module executed with the checks of :data:`SKIPPED` answering no."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, ...
        return getattr(self._loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        from lightning_utilities.core import imports

        cache_bool, available = imports.RequirementCache.__bool__, imports.package_available

        def lean_bool(cache: Any) -> bool:
            skipped = cache.requirement in SKIPPED and cache.module is None
            return False if skipped else cache_bool(cache)

        def lean_available(name: str) -> bool:
            return False if name in SKIPPED else available(name)

        imports.RequirementCache.__bool__ = lean_bool  # type: ignore[method-assign]
        imports.package_available = lean_available
        try:
            self._loader.exec_module(module)
        finally:
            imports.RequirementCache.__bool__ = cache_bool  # type: ignore[method-assign]
            imports.package_available = available
            if getattr(module, "package_available", None) is lean_available:
                module.package_available = available
        plot = sys.modules.get("torchmetrics.utilities.plot")
        if plot is not None and not hasattr(plot, "plt"):
            plot.plt = _LazyModule("matplotlib.pyplot")
            plot.matplotlib = _LazyModule("matplotlib")


class _Finder(importlib.abc.MetaPathFinder):
    """Finds torchmetrics as the other finders do, once, and wraps its loader in :class:`_LeanLoader`."""

    def find_spec(
        self, name: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != "torchmetrics":
            return None
        uninstall()
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _LeanLoader(spec.loader)
        return spec


_FINDER = _Finder()


def install() -> None:
    """Add the hook, unless torchmetrics is imported already (or the hook is in place)."""
    if "torchmetrics" not in sys.modules and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
