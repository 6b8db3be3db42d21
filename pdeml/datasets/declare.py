"""Naming and declaring the variables of an imported file, shared by every importer.

It sits below :mod:`pdeml.datasets.importers` and :mod:`pdeml.datasets.cfdbench`, which both
use it (they used to import these helpers from each other).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pdeml.datasets.reader import parse_selector
from pdeml.datasets.schema import DatasetError


def declare_io(attrs: dict[str, Any], src: Path, variables: dict[str, Any],
               inputs: Sequence[str] | None, outputs: Sequence[str] | None) -> None:
    """Set ``input_vars``/``output_vars`` in ``attrs`` (overrides checked against the variables).

    Parameters
    ----------
    attrs
        The file's root attributes, updated in place.
    src
        The source, named in an error.
    variables
        The variables the file will hold, by name.
    inputs, outputs
        Selectors (``u[0]``, ``mask``) given by the user, or ``None`` to keep ``attrs``'s.

    Raises
    ------
    DatasetError
        A selector names no variable.
    """
    for key, given in (("input_vars", inputs), ("output_vars", outputs)):
        if not given:
            continue
        missing = [s for s in given if parse_selector(s)[0] not in variables]
        if missing:
            raise DatasetError(f"{src}: no variable for {', '.join(missing)} "
                               f"(has: {', '.join(sorted(variables))})")
        attrs[key] = json.dumps(list(given))


def variable_name(key: str) -> str:
    """A variable name the reader's selectors accept (``x-coordinate`` -> ``x_coordinate``).

    Parameters
    ----------
    key
        A name from the source file.

    Returns
    -------
    str
        Word characters only, not starting with a digit.
    """
    name = re.sub(r"\W", "_", key)
    return name if re.match(r"[A-Za-z_]", name) else f"v_{name}"
