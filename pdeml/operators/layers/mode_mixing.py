"""Layers acting on a truncated real spectrum ``(batch, channels, m_1, ..., m_d)`` (T1).

In a cosine or real Fourier basis a convolution is no longer diagonal (it is for complex
exponentials only), so a frequency-domain layer needs to mix modes as well as channels. Two
cheap factors do it: a per-mode channel mixing (an FNO-style weight, one matrix per mode) and a
dense mixing along each frequency axis (one ``m_i x m_i`` matrix per channel and axis).

Initialisation is variance preserving: every map is scaled by its fan-in (channels for the
per-mode mixing, ``m_i`` for an axis mixing) so that, for independent inputs, it keeps the
mean square of the coefficients; ``gain`` compensates what the following activation removes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

_MODES = "klm"

# Second moment of act(z) for z ~ N(0, 1): the gain 1 / sqrt(moment) keeps E[act(Wz)^2] = E[z^2].
ACTIVATION_MOMENT = {"gelu": 0.4252, "relu": 0.5, "silu": 0.3557, "tanh": 0.3943}


def _contiguous(grad: torch.Tensor | None) -> torch.Tensor | None:
    return None if grad is None else grad.contiguous()


class PerModeLinear(nn.Module):
    """A separate ``in x out`` channel matrix for every retained mode (no weight sharing).

    Parameters
    ----------
    in_channels, out_channels
        Channel counts.
    n_modes
        Retained modes per axis (1 to 3 axes).
    gain
        Multiplies the variance-preserving standard deviation ``1 / sqrt(in_channels)``.
    bias
        Learn an additive bias per output channel and mode.
    """

    def __init__(self, in_channels: int, out_channels: int, n_modes: Sequence[int],
                 gain: float = 1.0, bias: bool = True) -> None:
        super().__init__()
        self.n_modes = tuple(int(m) for m in n_modes)
        self.in_channels, self.out_channels = in_channels, out_channels
        std = gain / in_channels ** 0.5
        # Modes first: the forward is then one batched GEMM over modes without a weight copy.
        self.weight = nn.Parameter(std * torch.randn(*self.n_modes, in_channels, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels, *self.n_modes)) if bias else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(batch, in, *m)`` to ``(batch, out, *m)``."""
        d, b = len(self.n_modes), z.shape[0]
        zm = z.flatten(2).permute(2, 0, 1).contiguous()  # (modes, batch, in)
        out = torch.bmm(zm, self.weight.reshape(-1, self.in_channels, self.out_channels))
        if out.requires_grad and not torch.compiler.is_compiling():
            # CPU bmm copies every per-mode slice of a non-contiguous incoming gradient (the
            # permute below hands back one); one contiguous copy first is much cheaper.
            out.register_hook(_contiguous)
        out = out.permute(1, 2, 0).reshape(b, self.out_channels, *z.shape[2:2 + d])
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, n_modes={self.n_modes}"


class AxisMixing(nn.Module):
    """Dense mixing along each frequency axis, one ``m_i x m_i`` matrix per channel and axis.

    Parameters
    ----------
    channels
        Channel count.
    n_modes
        Retained modes per axis.
    init
        ``"vp"``: entries ``N(0, 1 / m_i)`` (keeps the mean square); ``"identity"``: starts as
        the identity (the layer then begins diagonal in modes, like an FNO layer).
    """

    def __init__(self, channels: int, n_modes: Sequence[int], init: str = "vp") -> None:
        super().__init__()
        if init not in ("vp", "identity"):
            raise ValueError(f"unknown axis-mixing init '{init}'; use vp or identity")
        self.n_modes = tuple(int(m) for m in n_modes)
        mats = []
        for m in self.n_modes:
            if init == "vp":
                mats.append(nn.Parameter(torch.randn(channels, m, m) / m ** 0.5))
            else:
                mats.append(nn.Parameter(torch.eye(m).expand(channels, m, m).clone()))
        self.weights = nn.ParameterList(mats)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, *m)`` to the same shape."""
        d = len(self.n_modes)
        modes = _MODES[:d]
        for axis, w in enumerate(self.weights):
            out = modes.replace(modes[axis], "q")
            z = torch.einsum(f"bc{modes},c{modes[axis]}q->bc{out}", z, w)
        return z

    def extra_repr(self) -> str:
        return f"n_modes={self.n_modes}"
