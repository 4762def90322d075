"""The int8 arithmetic: wide integers as int8 digits, convolutions as int8 GEMMs whose integer
results are exact whatever the kernel, batch or thread count, and Bit-Swap models built on it
that code and decode to the same bytes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recarchive.codecs import get_codec
from recarchive.codecs.bitswap import BitSwapCodec
from recarchive.datasets import cifar10_split
from recarchive.exact import int8, int8_kernels
from recarchive.exact.int8 import (
    MAX_FAN_IN,
    Int8Conv2d,
    Int8ELU,
    digit_range,
    digits_for,
    int8_matmul,
    split_digits,
)
from recarchive.exact.reference import LookupActivation
from recarchive.models import zoo
from recarchive.models.bitswap import BitSwapConfig, BitSwapModel, weight8
from recarchive.models.exact_bitswap import Int8ConditionalNet, convert_to_exact
from recarchive.training.bitswap import calibrate_activations
from tests.threads import torch_threads

TINY8 = BitSwapConfig(latent_layers=2, latent_channels=4, width=8, res_blocks=1,
                      pixel_context="checkerboard", arithmetic="int8")


def reference_conv(x: torch.Tensor, conv: Int8Conv2d, weight: torch.Tensor,
                   bias: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """The same conv in int64-exact float64 (NCHW), requantized by the textbook formula."""
    acc = F.conv2d(x.permute(0, 3, 1, 2).to(torch.float64), weight.to(torch.float64),
                   padding=conv.padding)
    acc = acc.to(torch.int64)
    assert float(acc.abs().max()) < 2**53
    acc = acc.permute(0, 2, 3, 1)
    right, left = shift.clamp(min=0), (-shift).clamp(min=0)
    offset = torch.where(right > 0, 1 << (right - 1).clamp(min=0), 0)
    out = ((acc << left) + bias + offset) >> right
    limit = 1 << (conv.out_bits - 1)
    return out.clamp(-limit, limit - 1)


@pytest.mark.parametrize("bits", [2, 8, 9, 12, 15, 16, 22])
def test_digits_hold_every_integer_of_their_width(bits):
    digits = digits_for(bits)
    low, high = digit_range(digits)
    assert low <= -(1 << (bits - 1)) and high >= (1 << (bits - 1)) - 1
    x = torch.cat([torch.arange(-(1 << (bits - 1)), -(1 << (bits - 1)) + 300),
                   torch.arange((1 << (bits - 1)) - 300, 1 << (bits - 1)),
                   torch.randint(-(1 << (bits - 1)), 1 << (bits - 1), (1000,))])
    x = x[(x >= -(1 << (bits - 1))) & (x < 1 << (bits - 1))]
    parts = split_digits(x, digits)
    assert parts.dtype == torch.int8
    back = sum(parts[i].to(torch.int64) << (7 * i) for i in range(digits))
    assert torch.equal(back, x)
    if digits > 1:
        assert int(parts[:-1].min()) >= 0  # low digits unsigned


def test_int8_gemm_is_exact_at_the_extremes_on_every_kernel(monkeypatch):
    a, b = int8._worst_case(torch.device("cpu"))
    exact = a.to(torch.int64) @ b.to(torch.int64)
    assert int(exact.abs().max()) == MAX_FAN_IN * 128 * 128  # the bound is reached
    assert torch.equal(int8_matmul(a, b).to(torch.int64), exact)
    assert torch.equal(int8._float32_mm(a, b).to(torch.int64), exact)
    # a kernel that fails the self-check is not used: the float32 path gives the same integers
    monkeypatch.setattr(int8, "_int_mm_is_exact", lambda device_type: False)
    assert torch.equal(int8_matmul(a, b).to(torch.int64), exact)


def test_a_kernel_that_saturates_is_caught_by_the_self_check(monkeypatch):
    def saturating(a, b):  # pairs of products added in 16-bit lanes, as pre-VNNI CPUs do
        products = a.to(torch.int64)[:, :, None] * b.to(torch.int64)[None]
        pairs = products[:, 0::2] + products[:, 1::2]
        return pairs.clamp(-(1 << 15), (1 << 15) - 1).sum(1).to(torch.int32)

    int8._int_mm_is_exact.cache_clear()
    monkeypatch.setattr(torch, "_int_mm", saturating)
    try:
        assert not int8._int_mm_is_exact("cpu")
    finally:
        int8._int_mm_is_exact.cache_clear()


CASES = [  # in_bits, weight_bits, padding, input_offset, in/out channels, size
    (8, 8, 1, 0, 16, 8, 6),
    (15, 8, 1, 16000, 64, 64, 5),
    (15, 15, 1, 15000, 64, 24, 4),
    (8, 8, 1, 120, 16, 8, 6),
    (8, 15, 1, 64, 16, 10, 5),
    (12, 15, 1, 0, 5, 16, 6),
    (12, 15, 0, 0, 7, 8, 8),
    (15, 8, 1, 0, 64, 64, 4),
]


@pytest.fixture(params=["compiled", "torch"])
def loops(request, monkeypatch):
    """Each conv test twice: with numba's compiled loops around the GEMM, and with the torch
    operations CUDA and machines without numba use."""
    if request.param == "compiled" and not int8_kernels.AVAILABLE:
        pytest.skip("numba is a declared dependency; this machine lacks it")
    if request.param == "torch":
        monkeypatch.setattr(int8_kernels, "AVAILABLE", False)
    return request.param


@pytest.mark.parametrize("case", CASES)
def test_int8_conv_equals_the_exact_reference(case, loops):
    in_bits, weight_bits, padding, offset, cin, cout, size = case
    gen = torch.Generator().manual_seed(sum(case))
    wlimit = (1 << (weight_bits - 1)) - 1
    weight = torch.randint(-wlimit, wlimit + 1, (cout, cin, 3, 3), generator=gen)
    weight[0] = wlimit
    weight[1] = -wlimit
    bias = torch.randint(-5000, 5000, (cout,), generator=gen)
    shift = torch.randint(-3, 20, (cout,), generator=gen)
    conv = Int8Conv2d(weight, bias, shift, in_bits=in_bits, weight_bits=weight_bits,
                      out_bits=24, padding=padding, input_offset=offset)
    assert torch.equal(conv.integer_weight(), weight)
    low = -(1 << (in_bits - 1)) + offset
    high = (1 << (in_bits - 1)) - 1 + offset
    x = torch.randint(low, high + 1, (3, size, size, cin), generator=gen)
    x[0], x[1] = low, high
    got = conv(x)
    assert got.dtype == torch.int32
    # the offset is subtracted inside; zero padding stays activation 0
    assert torch.equal(got.to(torch.int64), reference_conv(x, conv, weight, bias, shift))
    # batch size and threads change nothing
    single = torch.cat([conv(x[i : i + 1]) for i in range(3)])
    with torch_threads(2):
        assert torch.equal(conv(x), single)
    assert torch.equal(got, single)


@pytest.mark.parametrize("table_bits, dtype", [(8, torch.int32), (15, torch.int64),
                                               (15, torch.int32)])
def test_compiled_loops_compute_the_torch_operations_integers(table_bits, dtype, monkeypatch):
    """ELU, conv and residual in the compiled loops equal the torch composition, at the
    residual stream's extremes and through both activation tables (int8 and int16)."""
    gen = torch.Generator().manual_seed(table_bits)
    frac = 4 if table_bits == 8 else 11
    levels = 1 << table_bits
    top, offset = levels - 1 - (1 << frac), levels // 2 - (1 << frac)
    elu = Int8ELU(12, frac, top, offset)
    assert elu.table.dtype == (torch.int8 if table_bits == 8 else torch.int16)
    cin = cout = 16
    weight = torch.randint(-127, 128, (cout, cin, 3, 3), generator=gen)
    conv = Int8Conv2d(weight, torch.randint(-9000, 9000, (cout,), generator=gen),
                      torch.randint(-2, 14, (cout,), generator=gen), in_bits=table_bits,
                      weight_bits=8, out_bits=20, padding=1, input_offset=offset)
    h = torch.randint(-(1 << 19), 1 << 19, (3, 5, 6, cin), generator=gen)
    h[0, 0], h[0, 1] = -(1 << 19), (1 << 19) - 1
    h[1] = torch.randint(-(1 << 13), 1 << 13, h[1].shape, generator=gen)  # ELU's curved part
    h = h.to(dtype)
    residual = torch.randint(-(1 << 19), 1 << 19, (3, 5, 6, cout), generator=gen,
                             dtype=torch.int32)
    compiled = conv(h, elu), conv(h, elu, residual=residual)
    monkeypatch.setattr(int8_kernels, "AVAILABLE", False)
    composed = conv(elu(h)), conv(h, elu, residual=residual)
    limit = 1 << 19
    assert torch.equal(composed[1], torch.clamp(residual + composed[0], -limit, limit - 1))
    for got, want in zip(compiled, composed, strict=True):
        assert got.dtype == want.dtype == torch.int32
        assert torch.equal(got, want)
    assert int(composed[1].max()) == limit - 1  # the clamp was reached and agreed on


def test_int8_conv_refuses_what_it_cannot_compute_exactly():
    with pytest.raises(ValueError, match="fan-in"):
        Int8Conv2d(torch.zeros(1, 128, 3, 3), torch.zeros(1), torch.zeros(1), in_bits=8,
                   weight_bits=8, out_bits=20, padding=1)
    with pytest.raises(ValueError, match="8 signed bits|exceed"):
        Int8Conv2d(torch.full((1, 1, 3, 3), 200.0), torch.zeros(1), torch.zeros(1),
                   in_bits=8, weight_bits=8, out_bits=20, padding=1)


@pytest.mark.parametrize("levels,frac", [(256, 0), (256, 6), (1 << 15, 9), (1 << 15, 12)])
def test_int8_elu_is_elu_rounded_to_its_grid(levels, frac):
    top, offset = levels - 1 - (1 << frac), levels // 2 - (1 << frac)
    elu = Int8ELU(12, frac, top, offset)
    assert elu.table.dtype == (torch.int8 if levels == 256 else torch.int16)
    x = torch.arange(-(1 << 15) - 50, (top << (12 - frac)) + 5000, dtype=torch.int32)
    got = elu(x).to(torch.int64) + offset
    negative = LookupActivation.elu(in_bits=16, in_scale=2.0**-12, out_scale=2.0**-frac,
                                    out_bits=16).table
    index = x.to(torch.int64).clamp(-(1 << 15), -1) + (1 << 15)
    drop = 12 - frac
    rounded = (x.to(torch.int64) + ((1 << drop) >> 1)) >> drop
    assert elu.table.numel() == (1 << 15) + (top << drop) + 1
    expected = torch.where(x >= 0, rounded.clamp(max=top), negative[index])
    assert torch.equal(got, expected)
    assert int(got.min()) >= -(1 << frac) and int(got.max()) == top


def test_the_float_model_trains_on_the_grid_the_exact_net_computes_with():
    model = calibrated_tiny_model()
    exact = convert_to_exact(model)
    float_conv = model.infer[0].blocks[0].conv1
    exact_conv = exact.infer[0].blocks[0][1]
    frac = int(model.infer[0].blocks[0].quant1.frac)
    # integer weight × 2^-shift × out/in scale is exactly the float model's 8-bit weight
    shift = exact_conv.right - exact_conv.left
    scale = (2.0 ** -shift.to(torch.float64)) * 2.0**-12 / 2.0**-frac
    rebuilt = exact_conv.integer_weight().to(torch.float64) * scale.view(-1, 1, 1, 1)
    assert torch.equal(rebuilt, weight8(float_conv.weight.detach().to(torch.float64)))
    assert int(exact_conv.integer_weight().abs().max()) <= 127


def calibrated_tiny_model(seed: int = 0) -> BitSwapModel:
    torch.manual_seed(seed)
    model = BitSwapModel(TINY8)
    with torch.no_grad():
        for out in (model.context.mean, model.context.log_scale):
            out.parametrizations.weight.original0.normal_(0.0, 0.5)
            out.bias.normal_(0.0, 0.1)
    calibrate_activations(model, np.asarray(cifar10_split("validation")[:64]),
                          torch.device("cpu"))
    return model.eval()


@pytest.fixture(scope="module")
def int8_model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("zoo8") / "tiny-int8.safetensors"
    path.write_bytes(zoo.bitswap_model_bytes(calibrated_tiny_model(), {"note": "untrained"}))
    return path


def test_an_int8_model_file_says_so_and_loads_into_int8_nets(int8_model_file):
    loaded = zoo.load_bitswap(str(int8_model_file))
    assert loaded.float_model.config.arithmetic == "int8"
    assert '"arithmetic": "int8"' in loaded.metadata["config"]
    assert all(isinstance(net, Int8ConditionalNet)
               for net in (*loaded.exact.infer, *loaded.exact.generate, loaded.exact.context))
    fresh = convert_to_exact(loaded.float_model)
    x = torch.randint(0, 256, (3, 12, 16, 16))
    for a, b in zip(loaded.exact.posterior(0, 2 * x - 255), fresh.posterior(0, 2 * x - 255),
                    strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("chains", [1, 3])
def test_an_int8_model_round_trips_with_other_batches_and_threads(int8_model_file, chains):
    blocks = np.ascontiguousarray(cifar10_split("test")[:12])
    coder = get_codec("bitswap", model=str(int8_model_file), chains=chains).rgb
    shard = coder.encode(blocks)
    assert np.array_equal(coder.decode(shard), blocks)
    other = get_codec("bitswap", model=str(int8_model_file), chains=chains, net_batch=1).rgb
    with torch_threads(2):
        assert other.encode(blocks).payload == shard.payload
        assert np.array_equal(other.decode(shard), blocks)


def test_fine_tuning_a_fixed64_model_into_int8_keeps_its_weights():
    from recarchive.training.bitswap import load_initial_weights

    source = BitSwapModel(dataclasses.replace(TINY8, arithmetic="fixed64"))
    weights = source.state_dict()
    model = BitSwapModel(TINY8)
    load_initial_weights(model, weights)
    for key, value in weights.items():
        assert torch.equal(model.state_dict()[key], value)
    assert all(int(q.frac) == -1 for q in model.modules() if hasattr(q, "calibrate"))


# A small int8 model kept with the tests, and the payloads it codes ten CIFAR-10 test images
# to (two chains): never update these to make a change pass; archives coded with int8 models
# must keep decoding.
PINNED_MODEL = Path(__file__).parent / "data" / "bitswap-tiny-int8.safetensors"
PINNED_MODEL_SHA256 = "f9164644522c82ee69fdfafc3e1b144b7d149a9ca860b7826cffe029dd975c73"
PINNED_PAYLOADS = {
    "bitswap": "9664b39a883491862c8c2cebd0fe3e02a70ba3ae910a5e17171e97ea30d9e5d7",
    "bbans": "934f4a7e5c7ca220c2846b6c551540914dc546083a7ba45340803d352ad20536",
}


@pytest.mark.parametrize("mode", sorted(PINNED_PAYLOADS))
def test_coded_bytes_are_those_earlier_releases_wrote(mode):
    blocks = np.ascontiguousarray(cifar10_split("test")[:10])
    loaded = zoo.load_bitswap(str(PINNED_MODEL), PINNED_MODEL_SHA256)
    coder = BitSwapCodec(loaded.exact, loaded.sha256, mode=mode, chains=2, lanes_per_chain=16,
                         first_block="raw")
    shard = coder.encode(blocks)
    assert zoo.sha256_of(shard.payload) == PINNED_PAYLOADS[mode]
    assert np.array_equal(coder.decode(shard), blocks)


def test_the_gemm_kernel_does_not_change_the_bytes(monkeypatch):
    """oneDNN's int8 kernel and the float32 fallback (what a CPU without VNNI, or CUDA's
    float64 fallback, computes with) write the same payload."""
    blocks = np.ascontiguousarray(cifar10_split("test")[:6])
    loaded = zoo.load_bitswap(str(PINNED_MODEL), PINNED_MODEL_SHA256)
    coder = BitSwapCodec(loaded.exact, loaded.sha256, chains=2, lanes_per_chain=16)
    fast = coder.encode(blocks)
    monkeypatch.setattr(int8, "_int_mm_is_exact", lambda device_type: False)
    assert coder.encode(blocks).payload == fast.payload
    assert np.array_equal(coder.decode(fast), blocks)
    # and the torch operations around the GEMM (CUDA's, or a machine's without numba)
    monkeypatch.setattr(int8_kernels, "AVAILABLE", False)
    assert coder.encode(blocks).payload == fast.payload


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (make gpu-check)")
def test_cuda_int8_conv_computes_the_cpus_integers():
    gen = torch.Generator().manual_seed(5)
    for in_bits, weight_bits, cin, cout in ((15, 8, 64, 64), (12, 15, 12, 24), (8, 8, 5, 3)):
        weight = torch.randint(-127, 128, (cout, cin, 3, 3), generator=gen)
        if weight_bits > 8:
            weight = weight * 129
        conv = Int8Conv2d(weight, torch.zeros(cout), torch.full((cout,), 6), in_bits=in_bits,
                          weight_bits=weight_bits, out_bits=24, padding=1)
        x = torch.randint(-(1 << (in_bits - 1)), 1 << (in_bits - 1), (2, 7, 7, cin),
                          generator=gen)
        assert torch.equal(conv.to("cuda")(x.to("cuda")).cpu(), conv.to("cpu")(x))
