"""Primed messages: data in place of the first clean bits, read back after bits-back decoding."""

from __future__ import annotations

import numpy as np
import pytest

from recarchive.ans import (
    NUMPY,
    CdfBank,
    message_from_bytes,
    message_to_bytes,
    pop_symbols,
    push_symbols,
    torch_backend,
)
from recarchive.ans.primed import can_prime, primed_message, primed_words
from tests.ans_helpers import random_cdf, sample_symbols

BACKENDS = [NUMPY, torch_backend("cpu")]


def test_which_lane_counts_one_block_primes():
    assert can_prime(16, 768) and can_prime(128, 768) and can_prime(384, 768)
    assert not can_prime(512, 768)  # 62 bits a head: more than 768 words hold
    assert not can_prime(8, 768)  # the bits past 8 heads end mid-word


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("lanes", [16, 128])
def test_primed_words_read_back(backend, lanes):
    words = np.random.default_rng(lanes).integers(0, 2**32, size=(3, 768))
    message = primed_message(words, lanes, seed=4, backend=backend)
    heads = backend.to_numpy(message.head)
    assert heads.shape == (3, lanes)
    assert heads.min() >= 2**62 and heads.max() < 2**63  # normal range, 62 data bits each
    assert len(message.stack) == 3 * (768 - 62 * lanes // 32)
    assert np.array_equal(primed_words(message, 768), words)
    with pytest.raises(ValueError, match="cannot fill"):
        primed_message(words[:, :100], 64, seed=4, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("latents_per_datum", [1, 6])
def test_bits_back_from_primed_data(backend, latents_per_datum):
    """Pop latents from the primed data (and, with six a step, past it into clean bits), push
    data, decode it all back, and read the priming words out of the restored message."""
    rng = np.random.default_rng(latents_per_datum)
    chains, lanes, steps = 2, 16, 40
    primer = rng.integers(0, 2**32, size=(chains, 32))
    posterior = CdfBank(random_cdf(rng, 1, 64, 14), 14, backend)
    likelihood = CdfBank(random_cdf(rng, 3, 256, 16), 16, backend)
    data_rows = rng.integers(0, 3, size=(steps, chains, lanes))
    data = sample_symbols(rng, likelihood.cdf_numpy, data_rows)
    rows0 = backend.asarray(np.zeros((chains, lanes), np.int64))
    message = primed_message(primer, lanes, seed=9, backend=backend)
    latents = []
    for step in range(steps):
        latents.append([backend.to_numpy(pop_symbols(message, posterior, rows0))
                        for _ in range(latents_per_datum)])
        push_symbols(message, likelihood, backend.asarray(data_rows[step]),
                     backend.asarray(data[step]))
    drew_clean = message.stack.clean_words_drawn > 0
    assert drew_clean == (latents_per_datum == 6)
    again = message_from_bytes(message_to_bytes(message), backend)
    for step in reversed(range(steps)):
        decoded = pop_symbols(again, likelihood, backend.asarray(data_rows[step]))
        assert np.array_equal(backend.to_numpy(decoded), data[step])
        for latent in reversed(latents[step]):
            push_symbols(again, posterior, rows0, backend.asarray(latent))
    assert np.array_equal(primed_words(again, 32), primer)
