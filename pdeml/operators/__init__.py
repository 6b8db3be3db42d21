"""Neural operators; every one builds from ``in_channels`` and ``out_channels`` alone."""

from pdeml.operators.base import OperatorBase, build, list_operators
from pdeml.operators.fno import FNO

__all__ = ["FNO", "OperatorBase", "build", "list_operators"]
