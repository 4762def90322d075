"""Running a test's step with a set number of torch threads: exactness must not depend on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """The block runs with `count` torch threads; the previous count comes back after it."""
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(count)
        yield
    finally:
        torch.set_num_threads(saved)
