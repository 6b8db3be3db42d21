"""T1, "Transform Once" (Poli et al., NeurIPS 2022): operator learning in the frequency domain.

The input is transformed once by a real transform (DCT-II by default), truncated to a block of
retained modes, processed by ``n_layers`` layers that never leave the frequency domain, and
transformed back once at the end. An FNO pays two transforms of ``hidden_channels`` fields in
every layer; T1 pays one transform of the inputs and one of the outputs, and its layers cost
``O(modes)`` instead of ``O(grid points)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pdeml.operators.base import OperatorBase
from pdeml.operators.layers import ChannelMLP, GridEmbedding, Pointwise, get_activation
from pdeml.operators.layers.mode_mixing import ACTIVATION_MOMENT, AxisMixing, PerModeLinear
from pdeml.operators.layers.transforms import (
    KINDS,
    energy_selection,
    forward_transform,
    inverse_transform,
)

SELECTIONS = ("lowest", "energy")
INITS = ("vp", "standard")


class T1Block(nn.Module):
    """``z <- z + act(W_k (A_1 x_1 ... A_d x_d z))``: mode mixing, per-mode channel mixing,
    activation, residual. See :mod:`pdeml.operators.layers.mode_mixing`.

    Parameters
    ----------
    channels
        Width.
    n_modes
        Retained modes per axis.
    activation
        Activation name.
    init
        ``vp`` (variance preserving) or ``standard`` (PyTorch-style ``U(+-1/sqrt(fan_in))``
        channel weights, identity axis mixing).
    residual_scale
        Multiplies the channel weights' scale (``1 / sqrt(n_layers)`` in T1), so the residual
        stack keeps the variance bounded.
    """

    def __init__(self, channels: int, n_modes: Sequence[int], activation: str, init: str,
                 residual_scale: float) -> None:
        super().__init__()
        gain = ACTIVATION_MOMENT[activation] ** -0.5 if init == "vp" else 3 ** -0.5
        self.axis = AxisMixing(channels, n_modes, "vp" if init == "vp" else "identity")
        self.channel = PerModeLinear(channels, channels, n_modes, gain * residual_scale)
        self.activation = get_activation(activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, *m)`` to the same shape."""
        return z + self.activation(self.channel(self.axis(z)))


class T1(OperatorBase):
    """Transform Once: real transform, frequency-domain layers, one inverse transform.

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input and output fields.
    n_modes
        Retained basis functions per axis (its length, 1 to 3, is the dimension). For the DCT,
        index ``k`` is ``cos(pi k t)``: 16 DCT modes span the frequencies of an FNO with
        ``n_modes=16`` (``|k| <= 8``). For ``rdft`` index ``2k - 1`` / ``2k`` is the cosine /
        sine of frequency ``k``. Modes a grid cannot resolve are zero.
    hidden_channels
        Width of the frequency-domain layers.
    n_layers
        Number of :class:`T1Block` layers.
    transform
        ``dct`` (DCT-II; non-periodic data) or ``rdft`` (real Fourier basis; periodic data).
    frequency_selection
        ``lowest``: the lowest ``n_modes`` indices per axis. ``energy``: per axis, the indices
        of largest energy among the lowest ``4 * n_modes``, chosen from the first training batch
        (or explicitly with :meth:`select_frequencies`) and saved in the state_dict.
    positional_embedding
        Append grid coordinates to the input before the transform.
    projection_channels
        Hidden width of the projection MLP; ``None`` means ``2 * hidden_channels``.
    activation
        ``gelu``, ``relu``, ``silu`` or ``tanh`` (applied to coefficients).
    init
        ``vp`` (variance preserving, the default) or ``standard``. The paper's variance
        preserving init also multiplies by ``sqrt(N / m)`` (grid points over retained modes):
        with an orthonormal transform, white noise of variance 1 on ``N`` points gives
        coefficients of variance 1 and a truncated inverse keeps only ``m / N`` of it. pdeml's
        basis functions have unit mean square instead (coefficients are grid averages), so a
        band-limited field has the same coefficients on every grid and the learned map does not
        change with resolution (zero-shot super-resolution); the factor would tie the scale to
        the training grid, and for smooth PDE data, whose coefficients do not shrink with
        ``N``, it would overshoot. It is left out on purpose.

    Notes
    -----
    Precision: under ``bf16-mixed`` the two transforms (dense basis matrices, cached per
    dtype), the axis and channel mixing and the MLPs run in bf16 GEMMs with fp32
    accumulation; frequency selection by energy runs in float64. At 64^2: output 4.4e-3 from
    float64, gradients 3.5e-3; Darcy 64^2 after 200 equal steps within 0.1% of fp32 (3
    seeds). T1's activations live on the coefficients, so bf16 saves little memory (5% of a
    step's peak at 64^2).

    Examples
    --------
    >>> net = T1(in_channels=1, out_channels=1)
    >>> net(torch.randn(4, 1, 64, 64)).shape
    torch.Size([4, 1, 64, 64])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_modes: Sequence[int] = (16, 16),
        hidden_channels: int = 32,
        n_layers: int = 4,
        transform: str = "dct",
        frequency_selection: str = "lowest",
        positional_embedding: bool = True,
        projection_channels: int | None = None,
        activation: str = "gelu",
        init: str = "vp",
    ) -> None:
        super().__init__()
        n_modes = tuple(int(m) for m in n_modes)
        if not 1 <= len(n_modes) <= 3 or min(n_modes) < 1:
            raise ValueError(f"n_modes must hold 1 to 3 positive ints, got {n_modes}")
        if min(in_channels, out_channels, hidden_channels, n_layers) < 1:
            raise ValueError("T1 channel counts and n_layers must be positive")
        for name, value, allowed in (("transform", transform, KINDS), ("init", init, INITS),
                                     ("frequency_selection", frequency_selection, SELECTIONS)):
            if value not in allowed:
                raise ValueError(f"unknown {name} '{value}'; use one of {', '.join(allowed)}")
        get_activation(activation)
        self.n_dim, self.in_channels, self.out_channels = len(n_modes), in_channels, out_channels
        self.n_modes, self.kind, self.frequency_selection = n_modes, transform, frequency_selection
        self.embedding = GridEmbedding(self.n_dim) if positional_embedding else None
        lift_in = in_channels + (self.n_dim if positional_embedding else 0)
        self.lifting = Pointwise(lift_in, hidden_channels, bias=False)
        self.blocks = nn.ModuleList(
            T1Block(hidden_channels, n_modes, activation, init, n_layers ** -0.5)
            for _ in range(n_layers)
        )
        self.projection = ChannelMLP(hidden_channels, out_channels,
                                     projection_channels or 2 * hidden_channels, activation)
        for axis, m in enumerate(n_modes):
            self.register_buffer(f"index_{axis}", torch.arange(m))
        self.register_buffer("selected", torch.tensor(frequency_selection == "lowest"))
        self._sync_index()
        self.register_load_state_dict_post_hook(lambda module, _: module._sync_index())

    def _sync_index(self) -> None:
        # Python copies of the index buffers: forward then never reads tensors for shapes,
        # which keeps torch.export and the basis cache happy.
        self.index = tuple(tuple(getattr(self, f"index_{a}").tolist()) for a in range(self.n_dim))

    @torch.no_grad()
    def select_frequencies(self, x: torch.Tensor) -> list[list[int]]:
        """Choose, per axis, the ``n_modes`` basis indices of largest energy in ``x``.

        Parameters
        ----------
        x
            Sample fields ``(batch, channels, *sizes)``: inputs, outputs or both stacked as
            channels (the choice is about which content the truncated basis should keep).

        Returns
        -------
        list of list of int
            The selected indices, now used by the model (and stored in its state_dict).
        """
        if x.ndim != self.n_dim + 2:
            raise ValueError(f"T1 expects (batch, channels, {self.n_dim} spatial dims), "
                             f"got {tuple(x.shape)}")
        limit = [n if self.kind == "dct" else 2 * ((n - 1) // 2) + 1 for n in x.shape[2:]]
        candidates = [max(m, min(4 * m, lim)) for m, lim in zip(self.n_modes, limit, strict=True)]
        chosen = energy_selection(x, self.kind, self.n_modes, candidates)
        for axis, idx in enumerate(chosen):
            getattr(self, f"index_{axis}").copy_(torch.tensor(idx))
        self.selected.fill_(True)
        self._sync_index()
        return chosen

    def encode(self, y: torch.Tensor) -> torch.Tensor:
        """Retained coefficients ``(batch, channels, *n_modes)`` of fields ``y``."""
        return forward_transform(y, self.kind, self.index)

    def decode(self, z: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
        """Fields on a grid of ``sizes`` from retained coefficients."""
        return inverse_transform(z, self.kind, self.index, sizes)

    def spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """The prediction's coefficients ``(batch, out_channels, *n_modes)``, before the inverse
        transform: compare them with :meth:`encode` of the target to train in transform space.
        """
        self.check_input(x, self.in_channels)
        if self.training and not bool(self.selected):
            self.select_frequencies(x)
        if self.embedding is not None:
            x = self.embedding(x)
        z = self.lifting(self.encode(x))
        for block in self.blocks:
            z = block(z)
        return self.projection(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, in_channels, *spatial)`` to ``(batch, out_channels, *spatial)``."""
        return self.decode(self.spectrum(x), x.shape[2:])


class TransformSpaceLoss(nn.Module):
    """Relative L2 error measured on a T1's retained coefficients (the T1 paper's loss).

    By Parseval (orthonormal basis) this is the relative L2 error of the band-limited
    projections of prediction and target; content the model cannot represent is left out.

    Parameters
    ----------
    model
        The T1 whose basis and retained modes define the coefficients.
    """

    def __init__(self, model: T1) -> None:
        super().__init__()
        self.__dict__["model"] = model  # a reference, not a submodule: no duplicate parameters

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of ``|c(pred) - c(target)| / |c(target)|``."""
        a, b = self.model.encode(pred).flatten(1), self.model.encode(target).flatten(1)
        return ((a - b).norm(dim=1) / b.norm(dim=1).clamp_min(1e-12)).mean()
