"""The base class of every pdeml operator: a JSON config for rebuilding, and a registry.

A checkpoint stores ``net.config`` (plain JSON) next to the state_dict, never pickled objects;
``build(config)`` turns it back into a model with the same parameter layout.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

_REGISTRY: dict[str, type[OperatorBase]] = {}


def _jsonable(value: Any) -> Any:
    """Tuples (and nested tuples) become lists, so the config survives a JSON round trip."""
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


class OperatorBase(nn.Module):
    """Base of all pdeml operators.

    Subclassing registers the class under its name (see :func:`build`) and wraps its
    ``__init__`` so that the constructor arguments, defaults included, are recorded in
    ``self.config = {"name": <class name>, "kwargs": {...}}``. Arguments must be JSON values
    (numbers, strings, booleans, None, lists/tuples, dicts); tuples are stored as lists.

    Attributes
    ----------
    config : dict
        ``{"name": str, "kwargs": dict}``; ``build(config)`` rebuilds the model.
    n_dim : int
        Number of spatial dimensions the operator works on; set by the subclass.
    dynamic_grid_export : bool
        False where the traced graph depends on the grid size (export keeps the traced grid).
    """

    config: dict[str, Any]
    n_dim: int
    # Arguments added after checkpoints were written, with the value that gives the layout of
    # those checkpoints (``build`` applies them to configs missing only these arguments).
    legacy_defaults: dict[str, Any] = {}
    # Whether the graph can be traced with symbolic grid sizes. An operator whose graph depends
    # on the grid (patches, levels, subdomains) sets False: ``export_module`` then exports the
    # traced grid without first trying a symbolic one (which fails, after up to ~30 s of tracing).
    dynamic_grid_export: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _recording_init(cls.__init__)  # type: ignore[method-assign]
        # Tracers (torch.export, FX) and tests may subclass on the fly: those do not register.
        if "<locals>" not in cls.__qualname__ and not cls.__module__.startswith("torch"):
            _REGISTRY[cls.__name__] = cls

    @classmethod
    def link_grid(cls, kwargs: dict[str, Any], spatial_shape: tuple[int, ...]) -> dict[str, Any]:
        """Settings derived from the data grid (none by default; MgNO sets its levels).

        Parameters
        ----------
        kwargs
            Constructor arguments from a config.
        spatial_shape
            Grid of the training data.

        Returns
        -------
        dict
            ``kwargs``, completed where the operator derives a setting from the grid.
        """
        return kwargs

    def check_input(self, x: torch.Tensor, in_channels: int) -> None:
        """Raise a one-line ``ValueError`` unless ``x`` is ``(batch, in_channels, *spatial)``.

        Parameters
        ----------
        x
            The input tensor.
        in_channels
            Expected channel count; ``self.n_dim`` gives the expected number of spatial dims.
        """
        name = type(self).__name__
        if x.ndim != self.n_dim + 2:
            raise ValueError(f"{name} expects (batch, channels, {self.n_dim} spatial dims), "
                             f"got a tensor of shape {tuple(x.shape)}")
        if x.shape[1] != in_channels:
            raise ValueError(f"{name} expects {in_channels} input channels, got {x.shape[1]}")


def _recording_init(init: Any) -> Any:
    """Wrap ``init`` to store its bound arguments as ``self.config``."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self: OperatorBase, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        # A subclass calling super().__init__ must not overwrite its own record: only the
        # __init__ that type(self) actually resolves to records.
        if type(self).__init__ is not wrapper:
            return
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        recorded = dict(bound.arguments)
        recorded.pop(next(iter(signature.parameters)))  # self
        for name, param in signature.parameters.items():
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                recorded.update(recorded.pop(name))
            elif param.kind is inspect.Parameter.VAR_POSITIONAL and recorded.pop(name):
                raise TypeError(f"{type(self).__name__}: *args cannot be recorded in a config")
        config = {"name": type(self).__name__, "kwargs": _jsonable(recorded)}
        try:
            json.dumps(config)
        except TypeError as err:
            name = type(self).__name__
            raise TypeError(f"{name} config is not JSON-serializable: {err}") from None
        self.config = config

    return wrapper


def list_operators() -> list[str]:
    """Names of the registered operators, sorted.

    Returns
    -------
    list of str
        Names accepted by :func:`build`.
    """
    return sorted(_REGISTRY)


def link_grid(name: str, kwargs: dict[str, Any], spatial_shape: tuple[int, ...]) -> dict[str, Any]:
    """Complete an operator's config from the data grid (see :meth:`OperatorBase.link_grid`).

    Parameters
    ----------
    name
        Registered operator name; an unknown name returns ``kwargs`` unchanged (``build``
        reports it).
    kwargs
        Constructor arguments.
    spatial_shape
        Grid of the training data.

    Returns
    -------
    dict
        The completed arguments.
    """
    cls = _REGISTRY.get(name)
    return kwargs if cls is None else cls.link_grid(kwargs, tuple(spatial_shape))


def build(config: Mapping[str, Any]) -> nn.Module:
    """Rebuild an operator from its ``config``.

    Parameters
    ----------
    config
        ``{"name": "FNO", "kwargs": {...}}``, as found in ``net.config``.

    Returns
    -------
    nn.Module
        A freshly initialised operator; load a state_dict to restore its weights.

    Raises
    ------
    ValueError
        If the config has no ``name`` or names no registered operator.
    """
    if not isinstance(config, Mapping) or "name" not in config:
        raise ValueError("operator config must be a mapping with a 'name' (and 'kwargs')")
    name = config["name"]
    if name not in _REGISTRY:
        raise ValueError(f"unknown operator '{name}'; available: {', '.join(list_operators())}")
    cls = _REGISTRY[name]
    kwargs = dict(config.get("kwargs") or {})
    legacy = getattr(cls, "legacy_defaults", {})
    if legacy:
        missing = set(inspect.signature(cls.__init__).parameters) - {"self"} - set(kwargs)
        if missing and missing <= set(legacy):
            # A config recorded (with every argument) before these arguments existed: they
            # take the value that reproduces the old layout, not today's default.
            kwargs.update({k: legacy[k] for k in missing})
    return cls(**kwargs)
