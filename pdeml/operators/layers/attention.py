"""Attention layers on token sequences ``(batch, tokens, channels)``.

GNOT's normalized linear attention (Hao et al., ICML 2023) costs O(n) in the number of tokens:
queries and keys are each normalized by a softmax over their feature axis, so every attention
weight ``q_t . k_s`` is positive and the row sums ``q_t . sum_s k_s`` need no n x m matrix.
Padded tokens (variable-size meshes padded to one length) are kept out of every sum by a key
mask, so outputs at valid points do not depend on what the padding holds or how long it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _masked(t: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero the tokens where ``mask`` (``(batch, tokens)``) is false; ``where``, not a product,
    so that NaN or inf in the padding cannot leak in as ``0 * inf``."""
    if mask is None:
        return t
    keep = mask.to(torch.bool)[:, None, :, None]
    return torch.where(keep, t, torch.zeros((), dtype=t.dtype, device=t.device))


def normalized_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                key_mask: torch.Tensor | None = None,
                                eps: float = 1e-6) -> torch.Tensor:
    """GNOT's normalized linear attention, per head.

    ``out_t = sum_s (q~_t . k~_s) v_s / sum_s (q~_t . k~_s)`` with ``q~`` and ``k~`` the
    softmax of ``q`` and ``k`` over their feature axis. Computed as ``q~ (k~^T v)`` and
    ``q~ . sum_s k~_s``: linear in the token counts. (GNOT's layers add ``q~`` to the result:
    see :class:`LinearAttention`.)

    Parameters
    ----------
    q
        Queries ``(batch, heads, n, d)``.
    k, v
        Keys and values ``(batch, heads, m, d)``.
    key_mask
        ``(batch, m)``, true (or 1) where a key token is real; padded keys are left out of
        both sums. ``None``: every key counts.
    eps
        Floor of the normalizing sum (an all-padding input gives zeros, not NaN).

    Returns
    -------
    torch.Tensor
        ``(batch, heads, n, d)``.
    """
    q = q.softmax(dim=-1)
    k = _masked(k.softmax(dim=-1), key_mask)
    v = _masked(v, key_mask)
    kv = torch.einsum("bhmd,bhme->bhde", k, v)
    norm = torch.einsum("bhnd,bhd->bhn", q, k.sum(dim=2)).clamp_min(eps)
    return torch.einsum("bhnd,bhde->bhne", q, kv) / norm.unsqueeze(-1)


def head_softmax(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Softmax over each head's features of tokens ``(batch, n, channels)``, same layout."""
    b, n, c = t.shape
    return t.view(b, n, n_heads, c // n_heads).softmax(dim=-1).view(b, n, c)


def token_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_heads: int,
                           key_mask: torch.Tensor | None = None,
                           eps: float = 1e-6) -> torch.Tensor:
    """:func:`normalized_linear_attention` on tokens ``(batch, n, channels)``, heads in place.

    The same function, computed without moving heads to a batch axis: ``k~^T v`` is formed
    for all channels at once and its off-head blocks are zeroed, so every product is one
    batched GEMM on contiguous tokens (the head transposes cost more than the extra
    ``n x channels^2`` multiply-adds at GNOT's widths).

    Parameters
    ----------
    q
        Normalized queries ``q~`` ``(batch, n, channels)`` (see :func:`head_softmax`).
    k, v
        Keys (before their softmax) and values ``(batch, m, channels)``.
    n_heads
        Heads; each owns ``channels / n_heads`` consecutive channels.
    key_mask
        ``(batch, m)``, true where a key token is real.
    eps
        Floor of the normalizing sum.

    Returns
    -------
    torch.Tensor
        ``(batch, n, channels)``.
    """
    b, n, c = q.shape
    d = c // n_heads
    k = head_softmax(k, n_heads)
    if key_mask is not None:
        keep = key_mask.to(torch.bool).unsqueeze(-1)
        zero = torch.zeros((), dtype=k.dtype, device=k.device)
        k, v = torch.where(keep, k, zero), torch.where(keep, v, zero)
    heads = torch.arange(c, device=q.device) // d
    same_head = (heads[:, None] == heads[None, :]).to(q.dtype)
    kv = (k.transpose(1, 2) @ v) * same_head  # (b, c, c), block diagonal
    norm = (q * k.sum(dim=1, keepdim=True)).view(b, n, n_heads, d).sum(-1, keepdim=True)
    out = (q @ kv).view(b, n, n_heads, d) / norm.clamp_min(eps)
    return out.view(b, n, c)


def _check_heads(channels: int, n_heads: int) -> None:
    if n_heads < 1 or channels % n_heads:
        raise ValueError(f"attention channels ({channels}) must be a multiple of n_heads "
                         f"({n_heads})")


class LinearAttention(nn.Module):
    """Multi-head normalized linear attention (self- or cross-attention), GNOT's form.

    ``out = W_o (q~ + Attn(q, K, V))``: the reference code adds the normalized query ``q~``
    (the softmax of the projected query over its features) to the attention result, a
    residual path inside the layer that keeps each token's own information at initialisation.

    Parameters
    ----------
    channels
        Token width of queries, keys, values and output.
    n_heads
        Number of heads; must divide ``channels``.

    Notes
    -----
    ``forward(x, context=None, key_mask=None)``: queries from ``x`` ``(batch, n, channels)``,
    keys and values from ``context`` ``(batch, m, channels)`` (``x`` itself when ``None``).
    """

    def __init__(self, channels: int, n_heads: int = 4) -> None:
        super().__init__()
        _check_heads(channels, n_heads)
        self.n_heads = n_heads
        self.query = nn.Linear(channels, channels)
        self.key_value = nn.Linear(channels, 2 * channels)
        self.out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attend from ``x`` to ``context`` (default ``x``); see the class notes."""
        context = x if context is None else context
        q = head_softmax(self.query(x), self.n_heads)
        k, v = self.key_value(context).chunk(2, dim=-1)
        return self.out(q + token_linear_attention(q, k, v, self.n_heads, key_mask))


class HeterogeneousCrossAttention(nn.Module):
    """GNOT's cross-attention from query tokens to several input functions at once.

    Each input function ``l`` (its own token set, of its own length) gets its own key and value
    projection; the query attends to each with normalized linear attention, separately
    normalized, and the results are summed with the normalized query, as in the reference
    code: ``out = W_o (q~ + sum_l Attn(q, K_l, V_l))``.

    Parameters
    ----------
    channels
        Token width (queries and every input function).
    n_inputs
        Number of input functions.
    n_heads
        Number of heads; must divide ``channels``.
    """

    def __init__(self, channels: int, n_inputs: int, n_heads: int = 4) -> None:
        super().__init__()
        _check_heads(channels, n_heads)
        if n_inputs < 1:
            raise ValueError(f"HeterogeneousCrossAttention needs n_inputs >= 1, got {n_inputs}")
        self.n_heads = n_heads
        self.query = nn.Linear(channels, channels)
        self.key_values = nn.ModuleList(nn.Linear(channels, 2 * channels)
                                        for _ in range(n_inputs))
        self.out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, contexts: Sequence[torch.Tensor],
                masks: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
        """Attend from ``x`` ``(batch, n, channels)`` to each ``contexts[l]``
        ``(batch, m_l, channels)``, with optional key masks ``masks[l]`` ``(batch, m_l)``."""
        if len(contexts) != len(self.key_values):
            raise ValueError(f"expected {len(self.key_values)} input functions, "
                             f"got {len(contexts)}")
        masks = [None] * len(contexts) if masks is None else list(masks)
        q = head_softmax(self.query(x), self.n_heads)
        total = q
        for proj, context, mask in zip(self.key_values, contexts, masks, strict=True):
            k, v = proj(context).chunk(2, dim=-1)
            total = total + token_linear_attention(q, k, v, self.n_heads, mask)
        return self.out(total)
