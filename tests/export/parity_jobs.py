"""One operator's exports for the parity tests, runnable in a worker process.

The parity fixture runs these for all operators in a process pool (one process per core):
tracing and lowering are single-threaded Python, so two cores halve the fixture's time.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch


def export_operator(name: str, kwargs: dict[str, Any], formats: tuple[str, ...],
                    sizes: tuple[int, int], root: str) -> tuple[list, dict, dict]:
    """Export ``name`` to each format at ``sizes[0]`` (and at ``sizes[1]`` again when the grid
    is not dynamic); save the inputs; return the loader's jobs, eager outputs and export info."""
    from pdeml.export import export_module
    from pdeml.operators import build

    torch.set_num_threads(1)
    torch.manual_seed(zlib.crc32(name.encode()))
    root_path = Path(root)
    net = build({"name": name, "kwargs": {"in_channels": 2, "out_channels": 1, **kwargs}})
    net.eval()
    jobs, expected, info = [], {}, {}
    for fmt in formats:
        path = root_path / f"{name}.{fmt}"
        example = torch.randn(2, 2, sizes[0], sizes[0])
        info[fmt] = export_module(net, example, path)
        for n in sizes:
            model = path
            if not info[fmt]["dynamic_resolution"] and n != sizes[0]:
                model = root_path / f"{name}_{n}.{fmt}"
                export_module(net, torch.randn(2, 2, n, n), model, dynamic_resolution=False)
            x = torch.randn(3, 2, n, n)
            with torch.no_grad():
                expected[fmt, n] = net(x).numpy()
            stem = root_path / f"{name}_{fmt}_{n}"
            np.save(f"{stem}_in.npy", x.numpy())
            jobs.append({"model": str(model), "input": f"{stem}_in.npy",
                         "output": f"{stem}_out.npy", "key": [name, fmt, n]})
    return jobs, expected, info
