"""Reduced precision: which arithmetic a device has, and fp32 regions inside operators.

Training in ``bf16-mixed`` runs matrix products and convolutions in bfloat16 under autocast
while weights, optimizer state, normalization statistics and the loss stay in float32;
``bf16-true`` stores the weights in bfloat16 too. Whether that is *faster* depends on the
hardware: bf16 GEMMs are fast on GPUs with tensor cores (Ampere and later) and on CPUs with
``avx512_bf16`` or AMX, and emulated on CPUs without them (AVX2, e.g. AMD Zen 2), where PyTorch
falls back to a reference GEMM that is much slower than fp32's. :func:`bf16_support` tells
which case applies; ``pdeml train`` warns in the slow case and ``scripts/bench_precision.py``
measures it.

This module imports nothing from pdeml: operators, trainers and export all use it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import torch

# Lightning's spellings, grouped by what pdeml does with them.
MIXED = ("bf16-mixed", "bf16", "16-mixed", "16", 16)
TRUE_LOW = ("bf16-true", "16-true")
LOW_DTYPES = (torch.bfloat16, torch.float16)
EXPORT_PRECISIONS = ("fp32", "bf16")
# What an export must meet against the fp32 eager surrogate (recorded in its model card; a
# file that misses it is not written). fp32: the largest difference over the largest output
# (the DFT path against eager's FFT path differs by rounding). bf16: relative L2 over a batch;
# bf16 keeps 8 significant bits (rounding 2^-9 = 0.2%), and a forward pass of rounded GEMMs
# measured 0.4-0.6% (FNO, T1, TFNO, MG-TFNO, GNOT), 1.5% (MgNO) and 2.4-3.1% (LSM) at their
# default sizes on 32^2 (scripts/bench_precision.py numerics).
PARITY = {"fp32": {"max_rel": 1e-4}, "bf16": {"rel_l2": 5e-2}}


@functools.cache
def bf16_support(device_type: str = "cpu") -> dict[str, Any]:
    """What the device offers for bfloat16 arithmetic.

    Parameters
    ----------
    device_type
        ``"cpu"`` or ``"cuda"``.

    Returns
    -------
    dict
        ``native``: bf16 GEMMs run on bf16 hardware (AMX or ``avx512_bf16`` on CPU; compute
        capability >= 8.0 on CUDA), so bf16 can be faster than fp32; ``runs``: bf16 works at
        all (always on CPU, emulated where not native); ``detail``: what was found, e.g.
        ``{"capability": "AVX2", "amx": False, "avx512_bf16": False, "onednn_bf16": False}``.
    """
    if device_type == "cuda":
        ok = torch.cuda.is_available()
        native = ok and torch.cuda.get_device_capability()[0] >= 8
        detail = {"device": torch.cuda.get_device_name() if ok else None,
                  "capability": list(torch.cuda.get_device_capability()) if ok else None}
        return {"native": bool(native), "runs": bool(ok and torch.cuda.is_bf16_supported()),
                "detail": detail}
    detail = {
        "capability": torch.backends.cpu.get_cpu_capability(),
        "amx": bool(torch.cpu._is_amx_tile_supported()),
        "avx512_bf16": bool(torch.cpu._is_avx512_bf16_supported()),
        # oneDNN takes bf16 matmuls where this holds (AVX-512 at least); else PyTorch's
        # reference GEMM runs them, converting every element on the fly.
        "onednn_bf16": bool(torch.backends.mkldnn.is_available()
                            and torch.ops.mkldnn._is_mkldnn_bf16_supported()),
    }
    return {"native": detail["amx"] or detail["avx512_bf16"], "runs": True, "detail": detail}


def normalize_precision(precision: Any) -> str:
    """Lightning's canonical name of a precision setting (``"32-true"``, ``"bf16-mixed"``...).

    Parameters
    ----------
    precision
        A ``trainer.precision`` value (``32``, ``"32"``, ``"bf16"``, ``"bf16-mixed"``, ...) or
        ``None`` (Lightning's default, ``32-true``).

    Returns
    -------
    str
        The canonical name.
    """
    aliases = {None: "32-true", 32: "32-true", "32": "32-true", 64: "64-true", "64": "64-true",
               16: "16-mixed", "16": "16-mixed", "bf16": "bf16-mixed"}
    return aliases.get(precision, str(precision))


def precision_problem(precision: Any, device_type: str) -> tuple[str | None, str | None]:
    """An error or a warning for training in ``precision`` on ``device_type``.

    Parameters
    ----------
    precision
        A ``trainer.precision`` value.
    device_type
        Where the run will train: ``"cpu"`` or ``"cuda"`` (other accelerators: no opinion).

    Returns
    -------
    error, warning
        ``error``: a one-line reason the setting cannot run there (float16 autocast on CPU,
        which Lightning would silently turn into bf16); ``warning``: a one-line note when it
        runs but slower than fp32 (bf16 on a CPU without bf16 instructions). Each ``None``
        when there is nothing to say.
    """
    name = normalize_precision(precision)
    if device_type == "cpu" and name in ("16-mixed", "16-true"):
        return (f"trainer.precision={name} (float16) needs a GPU; on CPU use bf16-mixed "
                "(or 32)"), None
    if name.startswith("bf16") and device_type in ("cpu", "cuda"):
        info = bf16_support(device_type)
        if device_type == "cuda" and not info["runs"]:
            return f"trainer.precision={name}: this GPU has no bfloat16 support", None
        if not info["native"]:
            cap = info["detail"].get("capability")
            where = f"this CPU ({cap}) has no bf16 instructions (AMX, avx512_bf16)" \
                if device_type == "cpu" else f"this GPU (capability {cap}) has no bf16 " \
                "tensor cores"
            return None, (f"trainer.precision={name}: {where}; bf16 runs emulated and slower "
                          "than fp32 here (scripts/bench_precision.py measures it)")
    return None, None


def autocast_enabled(x: torch.Tensor) -> bool:
    """Whether autocast is on for ``x``'s device (CPU or CUDA).

    Parameters
    ----------
    x
        A tensor on the device concerned.

    Returns
    -------
    bool
        True inside ``torch.autocast`` for that device (Lightning's ``*-mixed``).
    """
    device_type = x.device.type
    return device_type in ("cpu", "cuda") and torch.is_autocast_enabled(device_type)


def low_precision_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The reduced dtype ``x``'s matrix products run in: autocast's, or ``x``'s own bf16/fp16.

    Parameters
    ----------
    x
        An activation.

    Returns
    -------
    torch.dtype or None
        ``None`` in full precision.
    """
    device_type = x.device.type
    if device_type in ("cpu", "cuda") and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return x.dtype if x.dtype in LOW_DTYPES else None


@contextlib.contextmanager
def full_precision(x: torch.Tensor) -> Iterator[None]:
    """Autocast off on ``x``'s device for the block: what runs inside runs in its inputs'
    dtype, so a caller that casts its inputs to float32 gets float32 arithmetic.

    Parameters
    ----------
    x
        Any tensor on the device concerned.
    """
    device_type = x.device.type
    if device_type in ("cpu", "cuda") and torch.is_autocast_enabled(device_type):
        with torch.autocast(device_type, enabled=False):
            yield
    else:
        yield


def as_float32(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Each of ``tensors`` in float32 unless it is float64 already (inputs of an fp32 region).

    Parameters
    ----------
    *tensors
        Floating tensors.

    Returns
    -------
    tuple of torch.Tensor
        Float32 (or float64) tensors.
    """
    return tuple(t if t.dtype in (torch.float32, torch.float64) else t.float() for t in tensors)


class Float32IO(torch.nn.Module):
    """A network run in a reduced ``dtype`` behind float32 input and output (how a bare
    operator is exported in bf16; a trained surrogate casts around its normalization itself).

    Parameters
    ----------
    model
        The network; it is cast to ``dtype`` in place.
    dtype
        ``torch.bfloat16`` or ``torch.float16``.
    """

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model, self.dtype = model.to(dtype), dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in float32 to the network's output in float32."""
        return self.model(x.to(self.dtype)).float()
