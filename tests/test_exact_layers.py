"""Exact integer layers: bound proofs, batch/thread/device invariance, references."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from recarchive.exact.quantize import (
    FLOAT64_EXACT_LIMIT,
    accumulator_bound,
    choose_multiplier_shift,
    requantize,
    signed_range,
)
from recarchive.exact.reference import (
    ExactConv2d,
    ExactLinear,
    LookupActivation,
    exact_conv2d_accumulate,
    exact_linear_accumulate,
)
from tests.threads import torch_threads

SCALE = 2.0**-10  # activation scale used by the test networks (16 bits cover +-32)

# (in_features, weight_bits, act_bits); (127, 16, 32) has bound 127 * 2**46 ~ 2**52.99.
LINEAR_CONFIGS = [(256, 8, 16), (4096, 8, 16), (1 << 18, 8, 24), (127, 16, 32)]
# (in_channels, kernel, weight_bits, act_bits); the last two are within a factor 2 of 2**53.
CONV_CONFIGS = [(3, 3, 8, 16), (64, 3, 8, 16), (32, 5, 8, 16), (8, 3, 16, 32), (127, 1, 16, 32)]


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def _rand_int(rng: np.random.Generator, bits: int, shape: tuple[int, ...]) -> np.ndarray:
    lo, hi = signed_range(bits)
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64)


def _worst_case_inputs(weight: np.ndarray, act_bits: int) -> np.ndarray:
    """One input per output channel whose products with that channel's weights are all
    maximal (negative weight -> most negative activation, else most positive)."""
    lo, hi = signed_range(act_bits)
    return np.where(weight < 0, lo, hi).astype(np.int64)


def conv2d_int64_reference(x: np.ndarray, w: np.ndarray, stride: int, padding: int,
                           dilation: int, groups: int) -> np.ndarray:
    """Independent integer conv: numpy int64 einsum per kernel tap (no floats anywhere)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    og = o // groups
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    wo = (wd + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((n, o, ho, wo), dtype=np.int64)
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                r0, c0 = i * dilation, j * dilation
                patch = xp[:, g * cg:(g + 1) * cg, r0:r0 + stride * (ho - 1) + 1:stride,
                           c0:c0 + stride * (wo - 1) + 1:stride]
                out[:, g * og:(g + 1) * og] += np.einsum(
                    "nchw,oc->nohw", patch, w[g * og:(g + 1) * og, :, i, j])
    return out


def _build_net(seed: int) -> nn.Sequential:
    """conv -> ELU -> strided conv -> ELU -> linear, all exact, from random float layers."""
    torch.manual_seed(seed)
    conv1, conv2 = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 16, 3, stride=2, padding=1)
    lin = nn.Linear(16 * 4 * 4, 10)
    elu = LookupActivation.elu(in_bits=16, in_scale=SCALE, out_scale=SCALE)
    return nn.Sequential(
        ExactConv2d.from_float(conv1, in_scale=SCALE, out_scale=SCALE), elu,
        ExactConv2d.from_float(conv2, in_scale=SCALE, out_scale=SCALE), elu,
        nn.Flatten(), ExactLinear.from_float(lin, in_scale=SCALE, out_scale=SCALE))


def _net_input(seed: int, batch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.floor(torch.randn(batch, 3, 8, 8, generator=g, dtype=torch.float64) * 2
                       / SCALE + 0.5).long()


# ---------------------------------------------------------------- accumulator bound proofs


def test_accumulator_bound_formula() -> None:
    assert accumulator_bound(8, 16, 576) == 576 * 128 * 32768
    assert accumulator_bound(8, 16, 576, bias_bound=7) == 576 * 128 * 32768 + 7
    # Why the bound matters: above 2**53 float64 sums do round.
    assert float(FLOAT64_EXACT_LIMIT) + 1.0 == float(FLOAT64_EXACT_LIMIT)


@pytest.mark.parametrize("fan_in,w_bits,a_bits", LINEAR_CONFIGS)
def test_linear_worst_case_is_exact(fan_in: int, w_bits: int, a_bits: int) -> None:
    rng = np.random.default_rng(fan_in)
    w = _rand_int(rng, w_bits, (4, fan_in))
    w[0] = signed_range(w_bits)[0]  # channel 0 all -2**(w-1): reaches the bound exactly
    layer = ExactLinear(torch.from_numpy(w), weight_bits=w_bits, act_bits=a_bits)
    assert layer.acc_bound == accumulator_bound(w_bits, a_bits, fan_in) < FLOAT64_EXACT_LIMIT
    x = np.concatenate([_worst_case_inputs(w, a_bits), -_worst_case_inputs(w, a_bits) - 1,
                        _rand_int(rng, a_bits, (2, fan_in))])
    got = layer.accumulate(torch.from_numpy(x))
    want = np.einsum("ni,oi->no", x, w)  # pure int64
    np.testing.assert_array_equal(got.numpy(), want)
    assert int(got[0, 0]) == layer.acc_bound  # the bound is attained, and computed exactly
    assert int(np.abs(want).max()) <= layer.acc_bound


@pytest.mark.parametrize("c_in,k,w_bits,a_bits", CONV_CONFIGS)
def test_conv_worst_case_is_exact(c_in: int, k: int, w_bits: int, a_bits: int) -> None:
    rng = np.random.default_rng(c_in * k)
    w = _rand_int(rng, w_bits, (8, c_in, k, k))
    w[0] = signed_range(w_bits)[0]
    layer = ExactConv2d(torch.from_numpy(w), weight_bits=w_bits, act_bits=a_bits)
    assert layer.acc_bound == accumulator_bound(w_bits, a_bits, c_in * k * k)
    assert layer.acc_bound < FLOAT64_EXACT_LIMIT
    x = _worst_case_inputs(w, a_bits)  # input n is the worst case for output channel n
    got = layer.accumulate(torch.from_numpy(x)).numpy()
    want = conv2d_int64_reference(x, w, 1, 0, 1, 1)
    np.testing.assert_array_equal(got, want)
    assert int(got[0, 0, 0, 0]) == layer.acc_bound
    diag = np.abs(w).reshape(8, -1).astype(np.int64) @ np.ones(c_in * k * k, np.int64)
    assert np.all(got[np.arange(8), np.arange(8), 0, 0] >= diag * signed_range(a_bits)[1])


def test_too_large_configs_are_refused() -> None:
    with pytest.raises(ValueError, match=r"ExactLinear\(in_features=128, out_features=1\)"):
        ExactLinear(torch.zeros(1, 128, dtype=torch.long), weight_bits=16, act_bits=32)
    with pytest.raises(ValueError, match=r"ExactConv2d\(in_channels=128.*kernel_size=\(1, 1\)"):
        ExactConv2d(torch.zeros(1, 128, 1, 1, dtype=torch.long), weight_bits=16, act_bits=32)
    ExactLinear(torch.zeros(1, 127, dtype=torch.long), weight_bits=16, act_bits=32)  # fits
    with pytest.raises(ValueError, match="not below 2\\*\\*53"):  # ... but the bias counts
        ExactLinear(torch.zeros(1, 127, dtype=torch.long), torch.tensor([1 << 46]),
                    weight_bits=16, act_bits=32)
    with pytest.raises(ValueError, match="overflow int64"):
        ExactLinear(torch.zeros(1, 64, dtype=torch.long), multiplier=1 << 40, shift=10)
    with pytest.raises(ValueError, match="8-bit range"):
        ExactLinear(torch.full((1, 4), 128), weight_bits=8)


def test_out_of_range_and_float32_inputs_are_rejected() -> None:
    layer = ExactLinear(torch.ones(2, 3, dtype=torch.long), act_bits=8)
    with pytest.raises(ValueError, match="outside"):
        layer(torch.tensor([[0, 128, 0]]))
    with pytest.raises(TypeError):
        layer(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="non-integer"):
        layer(torch.tensor([[0.5, 0.0, 0.0]], dtype=torch.float64))
    assert torch.equal(layer(torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)),
                       torch.tensor([[6, 6]]))


# ------------------------------------------------------- batch / thread / setting invariance


def test_batch_of_one_equals_batch_of_64() -> None:
    net = _build_net(0)
    x = _net_input(1, 64)
    batched = net(x)
    assert batched.dtype == torch.int64 and batched.abs().max() > 0
    for i in range(64):
        assert torch.equal(net(x[i:i + 1]), batched[i:i + 1]), i


def _big_workload(device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """A linear accumulator and a conv output large enough for BLAS to split work."""
    rng = np.random.default_rng(5)
    lin = ExactLinear(torch.from_numpy(_rand_int(rng, 8, (512, 512))), multiplier=3, shift=12)
    conv = ExactConv2d(torch.from_numpy(_rand_int(rng, 8, (32, 16, 3, 3))), multiplier=5,
                       shift=12, padding=1)
    xl = torch.from_numpy(_rand_int(rng, 16, (256, 512))).to(device)
    xc = torch.from_numpy(_rand_int(rng, 16, (8, 16, 32, 32))).to(device)
    return lin.to(device).accumulate(xl).cpu(), conv.to(device)(xc).cpu()


def test_one_thread_equals_two_threads() -> None:
    with torch_threads(1):
        one = [_digest(t) for t in _big_workload()]
    with torch_threads(2):
        two = [_digest(t) for t in _big_workload()]
    assert one == two


def test_tf32_and_matmul_precision_settings_do_not_matter() -> None:
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    ref = [_digest(t) for t in _big_workload()]
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("medium")
        assert [_digest(t) for t in _big_workload()] == ref
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cpu_equals_cuda() -> None:
    net = _build_net(0)
    x = _net_input(1, 16)
    cpu = net(x)
    gpu = net.to("cuda")(x.to("cuda")).cpu()
    assert torch.equal(cpu, gpu)
    for a, b in zip(_big_workload("cpu"), _big_workload("cuda"), strict=True):
        assert torch.equal(a, b)
    rng = np.random.default_rng(9)
    w = torch.from_numpy(_rand_int(rng, 16, (64, 127)))
    x = torch.from_numpy(_worst_case_inputs(w.numpy(), 32))
    assert torch.equal(exact_linear_accumulate(x.cuda(), w.cuda()).cpu(),
                       exact_linear_accumulate(x, w))


# ------------------------------------------------------------------------ references


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), groups=st.sampled_from([1, 2]), cg=st.integers(1, 4),
       og=st.integers(1, 4), k=st.integers(1, 4), stride=st.integers(1, 3),
       padding=st.integers(0, 2), dilation=st.integers(1, 2), h=st.integers(4, 10),
       w=st.integers(4, 10), seed=st.integers(0, 2**32 - 1))
def test_conv_matches_int64_reference(n: int, groups: int, cg: int, og: int, k: int,
                                      stride: int, padding: int, dilation: int, h: int, w: int,
                                      seed: int) -> None:
    if min(h, w) + 2 * padding < dilation * (k - 1) + 1:
        return
    rng = np.random.default_rng(seed)
    x = _rand_int(rng, 16, (n, groups * cg, h, w))
    weight = _rand_int(rng, 8, (groups * og, cg, k, k))
    bias = _rand_int(rng, 20, (groups * og,))
    layer = ExactConv2d(torch.from_numpy(weight), torch.from_numpy(bias), stride=stride,
                        padding=padding, dilation=dilation, groups=groups)
    want = conv2d_int64_reference(x, weight, stride, padding, dilation, groups)
    got = exact_conv2d_accumulate(torch.from_numpy(x), torch.from_numpy(weight), stride,
                                  padding, dilation, groups)
    np.testing.assert_array_equal(got.numpy(), want)
    np.testing.assert_array_equal(layer.accumulate(torch.from_numpy(x)).numpy(),
                                  want + bias[None, :, None, None])


def _requant_reference(acc: int, m: int, s: int, bits: int) -> int:
    lo, hi = signed_range(bits)
    return min(max((acc * m + ((1 << s) >> 1)) >> s, lo), hi)  # Python >> floors


@settings(max_examples=200, deadline=None)
@given(data=st.data(), m_bits=st.integers(0, 31), s=st.integers(0, 62),
       bits=st.integers(2, 32))
def test_requantize_matches_python_integers(data: st.DataObject, m_bits: int, s: int,
                                            bits: int) -> None:
    m = data.draw(st.integers(0, (1 << m_bits) - 1))
    limit = ((1 << 63) - 1 - ((1 << s) >> 1)) // max(m, 1)
    accs = data.draw(st.lists(st.integers(-limit, limit), min_size=1, max_size=20))
    got = requantize(torch.tensor(accs), torch.tensor(m), torch.tensor(s), bits)
    assert got.tolist() == [_requant_reference(a, m, s, bits) for a in accs]


def test_requantize_rounds_half_up_per_channel() -> None:
    acc = torch.tensor([[-5, -3, 5, 3, 1000, -1000]])
    m = torch.tensor([1, 1, 1, 1, 1, 1])
    s = torch.tensor([1, 1, 1, 1, 0, 0])
    # -2.5 -> -2, -1.5 -> -1, 2.5 -> 3, 1.5 -> 2, then clamp to 8 bits
    assert requantize(acc, m, s, 8).tolist() == [[-2, -1, 3, 2, 127, -128]]


@settings(max_examples=100, deadline=None)
@given(r=st.floats(1e-12, 1e3), bits=st.integers(8, 31))
def test_choose_multiplier_shift_accuracy(r: float, bits: int) -> None:
    if r >= 2.0**bits - 0.5:  # would need M >= 2**bits with s = 0
        with pytest.raises(ValueError):
            choose_multiplier_shift(r, bits)
        return
    m, s = choose_multiplier_shift(r, bits)
    assert 0 <= m < (1 << bits) and 0 <= s <= 62
    if s < 62:
        assert abs(m / 2.0**s - r) <= r * 2.0 ** (1 - bits)


def test_linear_matches_int64_reference_on_random_inputs() -> None:
    rng = np.random.default_rng(3)
    w, b = _rand_int(rng, 8, (32, 300)), _rand_int(rng, 24, (32,))
    m, s = rng.integers(0, 1 << 20, 32), rng.integers(0, 40, 32)
    x = _rand_int(rng, 16, (5, 7, 300))
    layer = ExactLinear(torch.from_numpy(w), torch.from_numpy(b), torch.from_numpy(m),
                        torch.from_numpy(s))
    acc = np.einsum("abi,oi->abo", x, w) + b
    want = [[[_requant_reference(int(acc[i, j, o]), int(m[o]), int(s[o]), 16)
              for o in range(32)] for j in range(7)] for i in range(5)]
    assert layer(torch.from_numpy(x)).tolist() == want


# ------------------------------------------------------------------- lookup activations


def test_elu_table_matches_float_elu_and_is_monotone() -> None:
    in_scale, out_scale, alpha = 2.0**-6, 2.0**-7, 1.5
    act = LookupActivation.elu(in_bits=12, in_scale=in_scale, out_scale=out_scale, alpha=alpha,
                               out_bits=14)
    lo, hi = signed_range(12)
    xs = np.arange(lo, hi + 1) * in_scale
    want = np.where(xs >= 0, xs, alpha * np.expm1(xs)) / out_scale
    table = act.table.numpy()
    assert np.all(np.abs(table - want) <= 0.5 + 1e-9)
    assert np.all(np.diff(table) >= 0)
    assert np.array_equal(table[xs >= 0], (2 * np.arange(hi + 1)))  # identity, scale 2
    assert table[0] == -round(alpha / out_scale)
    clamped = LookupActivation.elu(in_bits=12, in_scale=in_scale, out_scale=out_scale)
    assert clamped.table.max() == signed_range(12)[1]  # 2 * 2047 clamps to the 12-bit range
    x = torch.tensor([-5000, lo, -1, 0, 1, hi, 99999])
    expect = [table[0], table[0], table[-lo - 1], 0, 2, table[-1], table[-1]]
    assert act(x).tolist() == [int(v) for v in expect]


def test_lookup_state_dict_roundtrip_and_digest() -> None:
    act = LookupActivation.from_function(np.tanh, in_bits=10, in_scale=2.0**-7,
                                         out_scale=2.0**-8, out_bits=10)
    other = LookupActivation(torch.zeros(1024, dtype=torch.long), 10, 10)
    assert other.digest() != act.digest()
    other.load_state_dict(act.state_dict())
    assert other.digest() == act.digest()
    xs = np.arange(-512, 512) * 2.0**-7
    np.testing.assert_allclose(act.table.numpy() * 2.0**-8, np.tanh(xs), atol=2.0**-9 + 1e-12)
    net = _build_net(0).float().half()  # dtype casts must not touch the integer buffers
    assert all(b.dtype == torch.int64 for n, b in net.named_buffers() if "scale" not in n)


# -------------------------------------------------------------------- float conversion


def test_from_float_linear_is_close_to_float_layer() -> None:
    torch.manual_seed(7)
    lin = nn.Linear(128, 64)
    layer = ExactLinear.from_float(lin, in_scale=SCALE, out_scale=SCALE)
    x = torch.randn(32, 128, dtype=torch.float64)
    exact = layer.dequantize_output(layer(layer.quantize_input(x)))
    with torch.no_grad():
        ref_float = lin.double()(x)
        ref_fake = layer.forward_float_reference(x)
    assert (exact - ref_float).abs().max() < 0.01 * ref_float.abs().max()
    assert (exact - ref_fake).abs().max() <= SCALE * (1 + 1e-9)  # at most one output step


def test_from_float_conv_is_close_to_float_layer() -> None:
    torch.manual_seed(8)
    conv = nn.Conv2d(8, 16, 3, stride=2, padding=1)
    layer = ExactConv2d.from_float(conv, in_scale=SCALE, out_scale=SCALE)
    x = torch.randn(4, 8, 12, 12, dtype=torch.float64)
    exact = layer.dequantize_output(layer(layer.quantize_input(x)))
    with torch.no_grad():
        ref_float = conv.double()(x)
        ref_fake = layer.forward_float_reference(x)
    assert exact.shape == ref_float.shape
    assert (exact - ref_float).abs().max() < 0.01 * ref_float.abs().max()
    assert (exact - ref_fake).abs().max() <= SCALE * (1 + 1e-9)
