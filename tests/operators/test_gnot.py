"""GNOT: normalized linear attention, masks, heterogeneous inputs, grids and point clouds."""

import pytest
import torch

from pdeml.operators import GNOT
from pdeml.operators.layers.attention import normalized_linear_attention

torch.manual_seed(0)


def small(**kw):
    return GNOT(2, 1, hidden_channels=16, n_layers=2, n_heads=2, n_experts=2, **kw).double()


def cloud(b=2, n=30, d=2, c=2):
    return torch.rand(b, n, d, dtype=torch.float64), torch.randn(b, n, c, dtype=torch.float64)


def test_linear_attention_equals_the_explicit_weighted_sum_over_valid_keys():
    q, k, v = (torch.randn(2, 3, n, 4, dtype=torch.float64) for n in (5, 7, 7))
    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    out = normalized_linear_attention(q, k, v, mask)
    weights = q.softmax(-1) @ k.softmax(-1).transpose(-1, -2)  # (b, h, n, m), all positive
    weights = weights * mask[:, None, None, :]
    expected = (weights @ v) / weights.sum(-1, keepdim=True)
    assert torch.allclose(out, expected, atol=1e-12)


def test_token_layout_attention_equals_the_per_head_form():
    from pdeml.operators.layers.attention import head_softmax, token_linear_attention
    b, n, m, h, d = 2, 5, 7, 3, 4
    q, k, v = (torch.randn(b, t, h * d, dtype=torch.float64) for t in (n, m, m))
    mask = torch.tensor([[1, 1, 1, 0, 0, 0, 0], [1] * 7], dtype=torch.bool)
    split = [t.view(b, -1, h, d).transpose(1, 2) for t in (q, k, v)]
    per_head = normalized_linear_attention(*split, mask).transpose(1, 2).reshape(b, n, h * d)
    out = token_linear_attention(head_softmax(q, h), k, v, h, mask)
    assert torch.allclose(out, per_head, atol=1e-12)


def test_padding_never_enters_the_attention_sums():
    net = small().eval()
    coords, feats = cloud(n=20)
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[0, 13:] = False
    ref = net(coords, feats, mask)
    # Other padding content (NaN and inf included) and a longer padding: same valid outputs.
    coords2 = torch.cat([coords, torch.rand(2, 9, 2, dtype=torch.float64)], 1)
    feats2 = torch.cat([feats, torch.randn(2, 9, 2, dtype=torch.float64)], 1)
    coords2[0, 13:15], feats2[0, 15:] = float("nan"), float("inf")
    mask2 = torch.cat([mask, torch.zeros(2, 9, dtype=torch.bool)], 1)
    out = net(coords2, feats2, mask2)
    assert torch.allclose(out[0, :13], ref[0, :13], atol=1e-12)
    assert torch.allclose(out[1, :20], ref[1, :20], atol=1e-12)
    # The same sample alone and unpadded gives the same result: padding is invisible.
    alone = net(coords[:1, :13], feats[:1, :13])
    assert torch.allclose(alone[0], ref[0, :13], atol=1e-12)
    # Without the mask the padding does change valid outputs: the test can tell.
    assert not torch.allclose(net(coords, feats)[0, :13], ref[0, :13], atol=1e-6)


def test_points_are_a_set_permutation_equivariance():
    net = small().eval()
    coords, feats = cloud()
    perm = torch.randperm(coords.shape[1])
    assert torch.allclose(net(coords[:, perm], feats[:, perm]), net(coords, feats)[:, perm],
                          atol=1e-12)


def test_heterogeneous_inputs_enter_with_their_own_masks():
    net = small(extra_inputs=(3,)).eval()
    coords, feats = cloud()
    extra = torch.randn(2, 4, 3, dtype=torch.float64)
    extra_mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    out = net(coords, feats, inputs=[(extra, extra_mask)])
    changed = extra.clone()
    changed[0, 2:] = 100.0  # masked tokens of sample 0
    same = net(coords, feats, inputs=[(changed, extra_mask)])
    assert torch.allclose(same, out, atol=1e-12)
    changed[0, 0] = 5.0  # a valid token: the output must move
    assert not torch.allclose(net(coords, feats, inputs=[(changed, extra_mask)])[0], out[0])
    with pytest.raises(ValueError, match="1 extra input"):
        net(coords, feats)


def test_grid_call_is_the_point_call_on_grid_nodes():
    net = small().eval()
    x = torch.randn(2, 2, 6, 5, dtype=torch.float64)
    ii, jj = torch.meshgrid(torch.arange(6) / 6, torch.arange(5) / 5, indexing="ij")
    coords = torch.stack([ii, jj], -1).reshape(1, 30, 2).expand(2, -1, -1).double()
    points = net(coords, x.flatten(2).transpose(1, 2))
    assert torch.allclose(net(x), points.transpose(1, 2).reshape(2, 1, 6, 5), atol=1e-12)


def test_experts_are_gated_by_position_one_gate_per_block():
    net = small()
    block = net.blocks[0]
    pts = torch.rand(1, 50, 2, dtype=torch.float64)
    gate = block.gate(pts).softmax(-1)
    assert torch.allclose(gate.sum(-1), torch.ones(1, 50, dtype=torch.float64))
    assert gate.std(dim=1).max() > 0  # not a constant mixture
    assert not hasattr(block.ffn1, "gate") and not hasattr(block.ffn2, "gate")  # shared
    # The gated FFN is the gate-weighted sum of the experts, each a plain two-layer FFN.
    moe, h = block.ffn1, torch.randn(1, 50, 16, dtype=torch.float64)
    experts = []
    for e in range(moe.n_experts):
        cols = slice(e * moe.hidden, (e + 1) * moe.hidden)
        z = moe.activation(h @ moe.w1[:, cols] + moe.b1[cols])
        experts.append(z @ moe.w2[cols] + moe.b2[e])
    expected = sum(gate[..., e:e + 1] * experts[e] for e in range(moe.n_experts))
    assert torch.allclose(moe(h, gate), expected, atol=1e-12)


def test_a_single_expert_is_a_plain_ffn():
    net = GNOT(2, 1, hidden_channels=8, n_layers=1, n_heads=2, n_experts=1).double()
    block = net.blocks[0]
    assert block.gate is None
    moe, h = block.ffn1, torch.randn(1, 6, 8, dtype=torch.float64)
    with torch.no_grad():
        moe.b2.normal_()
    plain = moe.activation(h @ moe.w1 + moe.b1) @ moe.w2 + moe.b2[0]
    assert torch.allclose(moe(h, torch.ones(1, 6, 1, dtype=torch.float64)), plain, atol=1e-12)


def test_attention_adds_the_normalized_query_and_sums_the_inputs():
    from pdeml.operators.layers.attention import HeterogeneousCrossAttention
    torch.manual_seed(1)
    att = HeterogeneousCrossAttention(8, n_inputs=2, n_heads=2).double()
    x = torch.randn(1, 5, 8, dtype=torch.float64)
    ctx = [torch.randn(1, n, 8, dtype=torch.float64) for n in (4, 6)]
    q = att.query(x).view(1, 5, 2, 4).transpose(1, 2).softmax(-1)  # (b, heads, n, d)
    total = q.clone()
    for proj, c in zip(att.key_values, ctx, strict=True):
        k, v = (t.view(1, -1, 2, 4).transpose(1, 2) for t in proj(c).chunk(2, -1))
        w = q @ k.softmax(-1).transpose(-1, -2)  # explicit n x m weights
        total = total + (w @ v) / w.sum(-1, keepdim=True)
    expected = att.out(total.transpose(1, 2).reshape(1, 5, 8))
    assert torch.allclose(att(x, ctx), expected, atol=1e-12)


def test_grid_mode_shares_coordinate_work_and_checkpointing_changes_nothing():
    net = small().train()
    calls = []
    net.query_encoder.register_forward_hook(lambda m, i, o: calls.append(tuple(i[0].shape)))
    x = torch.randn(3, 2, 6, 5, dtype=torch.float64)
    out = net(x)
    assert calls == [(1, 30, 2)]  # once for the batch of 3, not per sample
    lean = small(checkpoint=True).train()
    lean.load_state_dict(net.state_dict())
    out2 = lean(x)
    assert torch.allclose(out, out2, atol=1e-12)
    out.square().mean().backward()
    out2.square().mean().backward()
    for (name, p), q in zip(net.named_parameters(), lean.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-10), name


def test_bad_point_inputs_raise():
    net = small()
    coords, feats = cloud()
    with pytest.raises(ValueError, match="coords"):
        net(coords[..., :1], feats)
    with pytest.raises(ValueError, match="features"):
        net(coords, feats[:, :5])
    with pytest.raises(ValueError, match="mask"):
        net(coords, feats, torch.ones(2, 3, dtype=torch.bool))


def test_device_and_dtype_follow_the_input():
    net = small().to("meta")
    coords = torch.empty(2, 10, 2, device="meta", dtype=torch.float64)
    feats = torch.empty(2, 10, 2, device="meta", dtype=torch.float64)
    mask = torch.ones(2, 10, device="meta", dtype=torch.bool)
    assert net(coords, feats, mask).device.type == "meta"
    assert net(torch.empty(1, 2, 4, 4, device="meta", dtype=torch.float64)).shape == (1, 1, 4, 4)


def test_mlp_layers_adds_residual_hidden_layers_as_the_reference_mlp():
    from pdeml.operators.gnot import TokenMLP

    mlp = TokenMLP(3, 2, 8, n_residual=2).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    h = mlp.activation(mlp.layers[0](x))
    for res in mlp.residual:
        h = h + mlp.activation(res(h))
    assert torch.allclose(mlp(x), mlp.layers[1](h), atol=1e-12)
    net = small(mlp_layers=3)
    encoders = [net.query_encoder, net.decoder, *net.input_encoders]
    assert all(len(m.residual) == 3 for m in encoders)
    plain = small(mlp_layers=0)
    assert all(len(m.residual) == 0 for m in (plain.query_encoder, plain.decoder))
    with pytest.raises(ValueError, match="mlp_layers"):
        small(mlp_layers=-1)


def test_defaults_are_the_reference_sizes_and_old_checkpoints_still_build():
    from pdeml.operators import build

    net = GNOT(1, 1)
    kw = net.config["kwargs"]
    assert (kw["n_heads"], kw["n_experts"], kw["mlp_ratio"], kw["mlp_layers"]) == (1, 1, 4, 3)
    assert net.blocks[0].gate is None  # one expert: no gate network
    # A config recorded before `mlp_layers` and `checkpoint` existed (all other arguments
    # present, as every recorded config has them) rebuilds the old layout.
    old = GNOT(1, 1, n_heads=4, n_experts=3, mlp_ratio=2, mlp_layers=0)
    recorded = {k: v for k, v in old.config["kwargs"].items()
                if k not in ("mlp_layers", "checkpoint")}
    rebuilt = build({"name": "GNOT", "kwargs": recorded})
    rebuilt.load_state_dict(old.state_dict())  # same layout, strict
    # A hand-written partial config gets today's defaults.
    assert len(build({"name": "GNOT", "kwargs": {"in_channels": 1, "out_channels": 1}})
               .decoder.residual) == 3
