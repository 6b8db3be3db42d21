"""Neural operators; every one builds from ``in_channels`` and ``out_channels`` alone."""

from pdeml.operators.base import OperatorBase, build, link_grid, list_operators
from pdeml.operators.fno import FNO
from pdeml.operators.gnot import GNOT
from pdeml.operators.lsm import LSM
from pdeml.operators.mgno import MgNO
from pdeml.operators.mgtfno import MGTFNO
from pdeml.operators.t1 import T1
from pdeml.operators.tfno import TFNO

__all__ = ["FNO", "GNOT", "LSM", "MGTFNO", "MgNO", "T1", "TFNO", "OperatorBase", "build",
           "link_grid", "list_operators"]
