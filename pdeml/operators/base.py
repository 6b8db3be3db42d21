"""Base class of pdeml operators: constructor arguments recorded, rebuildable by name."""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from torch import nn

_REGISTRY: dict[str, type[OperatorBase]] = {}


def _plain(value: Any) -> Any:
    """JSON-friendly copy of a constructor argument (tuples become lists)."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class OperatorBase(nn.Module):
    """An operator that records its keyword arguments in ``self.config``.

    Subclasses register themselves under their class name; :func:`build` rebuilds one from its
    ``config`` (``{"name": ..., "kwargs": {...}}``), which is what checkpoints store instead of
    pickled classes.
    """

    n_dim: int = 0
    registry_name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Tracers (torch.export, FX) subclass modules on the fly: those must not register.
        if "<locals>" in cls.__qualname__ or cls.__module__.startswith("torch"):
            return
        _REGISTRY[cls.registry_name or cls.__name__] = cls

    def record_config(self, local_vars: dict[str, Any]) -> None:
        """Store the constructor's arguments; call first thing in ``__init__`` with ``locals()``."""
        params = inspect.signature(type(self).__init__).parameters
        kwargs = {k: _plain(local_vars[k]) for k in params if k != "self" and k in local_vars}
        self.config = {"name": type(self).registry_name or type(self).__name__, "kwargs": kwargs}

    def check_input(self, x: Any, in_channels: int) -> None:
        """One-line errors for inputs of the wrong rank or channel count."""
        if x.ndim != self.n_dim + 2:
            raise ValueError(
                f"{type(self).__name__} expects (batch, channels, {self.n_dim} spatial dims), "
                f"got a tensor of shape {tuple(x.shape)}"
            )
        if x.shape[1] != in_channels:
            raise ValueError(
                f"{type(self).__name__} expects {in_channels} input channels, got {x.shape[1]}"
            )


def list_operators() -> list[str]:
    """Names of the registered operators."""
    return sorted(_REGISTRY)


def build(config: dict[str, Any]) -> OperatorBase:
    """Rebuild an operator from its ``config`` (``{"name": ..., "kwargs": {...}}``)."""
    name = config.get("name")
    if name not in _REGISTRY:
        raise ValueError(f"unknown operator '{name}'; available: {', '.join(list_operators())}")
    return _REGISTRY[name](**config.get("kwargs", {}))
