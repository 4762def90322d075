"""Fixed-point float64 convolutions: exact against int64 arithmetic, whatever batch or threads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from recarchive.exact.fixed_point import FixedPointConv2d, FixedPointELU, plain_convolution
from recarchive.exact.reference import exact_conv2d_accumulate
from tests.threads import torch_threads


def random_layer(seed: int, cin=16, cout=12, weight_bits=16, in_bits=20) -> FixedPointConv2d:
    gen = torch.Generator().manual_seed(seed)
    limit = (1 << (weight_bits - 1)) - 1
    weight = torch.randint(-limit, limit + 1, (cout, cin, 3, 3), generator=gen)
    bias = torch.randint(-(1 << 30), 1 << 30, (cout,), generator=gen)
    shift = torch.randint(4, 30, (cout,), generator=gen)
    return FixedPointConv2d(weight, bias, shift, in_bits=in_bits, out_bits=20, padding=1)


def reference(layer: FixedPointConv2d, x: torch.Tensor) -> torch.Tensor:
    """The same layer in int64 arithmetic only."""
    acc = exact_conv2d_accumulate(x.to(torch.int64), layer.weight.to(torch.int64), padding=1)
    acc = acc + layer.bias.to(torch.int64).view(-1, 1, 1)
    y = acc >> layer.shift.view(-1, 1, 1)  # floor division by 2^s
    limit = (1 << (layer.out_bits - 1)) - 1
    return torch.clamp(y, -limit - 1, limit)


def worst_case_input(layer: FixedPointConv2d, n=2) -> torch.Tensor:
    peak = float((1 << (layer.in_bits - 1)) - 1)
    x = torch.full((n, layer.weight.shape[1], 8, 8), peak, dtype=torch.float64)
    x[1] = -peak
    return x


def test_matches_int64_reference_at_the_bound():
    layer = random_layer(0)
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(-(1 << 19), 1 << 19, (3, 16, 9, 7), generator=gen).to(torch.float64)
    for inputs in (x, worst_case_input(layer)):
        assert torch.equal(layer(inputs).to(torch.int64), reference(layer, inputs))
    assert layer.accumulator_bound < 1 << 53


def test_batch_and_threads_do_not_change_results():
    layer = random_layer(2)
    gen = torch.Generator().manual_seed(3)
    x = torch.randint(-(1 << 19), 1 << 19, (64, 16, 16, 16), generator=gen).to(torch.float64)
    batched = layer(x)
    singles = torch.cat([layer(x[i : i + 1]) for i in range(64)])
    assert torch.equal(batched, singles)
    with torch_threads(1):
        one = layer(x)
    with torch_threads(2):
        two = layer(x)
    assert torch.equal(one, two) and torch.equal(one, batched)


def test_convs_side_by_side_give_each_conv_its_own_result():
    mean, log_scale = random_layer(5, cout=12), random_layer(6, cout=4)
    gen = torch.Generator().manual_seed(7)
    x = torch.randint(-(1 << 19), 1 << 19, (3, 16, 9, 9), generator=gen).to(torch.float64)
    for inputs in (x, worst_case_input(mean)):
        both = FixedPointConv2d.side_by_side((mean, log_scale), inputs)
        assert [t.shape[1] for t in both] == [12, 4]
        assert torch.equal(both[0].to(torch.int64), reference(mean, inputs))
        assert torch.equal(both[1].to(torch.int64), reference(log_scale, inputs))
    with pytest.raises(ValueError, match="one input shape"):
        FixedPointConv2d.side_by_side((mean, random_layer(8, cin=8)), x)


def test_too_wide_layers_are_refused():
    with pytest.raises(ValueError, match="2\\^53"):
        random_layer(4, cin=512, weight_bits=24, in_bits=24)


def test_from_float_tracks_the_float_layer():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 4, 3, padding=1)
    act = 2.0**-12
    layer = FixedPointConv2d.from_float(conv, act, act, weight_bits=16, in_bits=20, out_bits=20)
    x_real = torch.randn(2, 8, 6, 6)
    x_int = torch.round(x_real / act).to(torch.float64)
    expected = conv(x_int.float() * act).double() / act
    assert (layer(x_int) - expected).abs().max() < 4.0  # a few units of 2^-12


def test_elu_table_is_exact_and_monotone():
    elu = FixedPointELU(12)
    x = torch.arange(-40000, 40000, dtype=torch.float64)
    y = elu(x)
    assert torch.equal(y[x >= 0], x[x >= 0])
    assert bool((y[1:] >= y[:-1]).all())
    real = torch.nn.functional.elu(torch.clamp(x, min=-32768) * 2.0**-12) / 2.0**-12
    assert (y - real).abs().max() <= 0.5 + 1e-9


def test_plain_convolution_holds_until_the_last_context_closes():
    """The backend flags are process-wide: a thread leaving its context must not turn oneDNN
    back on while another thread is still inside one; nesting is free and restores on exit."""
    import threading

    before = torch.backends.mkldnn.enabled
    inside, leave = threading.Event(), threading.Event()

    def other_thread():
        with plain_convolution():
            inside.set()
            leave.wait(10)

    worker = threading.Thread(target=other_thread)
    with plain_convolution():
        worker.start()
        assert inside.wait(10)
        with plain_convolution():
            assert not torch.backends.mkldnn.enabled
        assert not torch.backends.mkldnn.enabled
    assert not torch.backends.mkldnn.enabled  # the other thread is still inside
    leave.set()
    worker.join(10)
    assert torch.backends.mkldnn.enabled == before
