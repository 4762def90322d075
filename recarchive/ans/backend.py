"""The two array backends of the coder: numpy (CPU) and torch (CPU or CUDA).

The rANS algorithm is written once against this small interface, so that the two backends
cannot drift apart: they run the same integer operations on int64 lane heads, and differ only
in how arrays are made, counted and stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

try:  # torch is a core dependency, but the numpy path must not need it to import.
    import torch
except ImportError:  # pragma: no cover - exercised only without torch installed
    torch = None  # type: ignore[assignment]

Array = Any  # np.ndarray or torch.Tensor; int64 unless said otherwise
WORD_MASK = 0xFFFFFFFF


@dataclass(frozen=True)
class Backend:
    """Array operations the coder needs, for one library and (for torch) one device."""

    name: str
    device: Any = None

    @property
    def is_torch(self) -> bool:
        return self.name == "torch"

    def asarray(self, values: Any) -> Array:
        """An int64 array on this backend (and device)."""
        if self.is_torch:
            if isinstance(values, torch.Tensor):
                return values.to(device=self.device, dtype=torch.int64)
            return torch.as_tensor(np.asarray(values, dtype=np.int64), device=self.device)
        if torch is not None and isinstance(values, torch.Tensor):
            values = values.detach().cpu().numpy()
        return np.asarray(values, dtype=np.int64)

    def from_numpy(self, values: np.ndarray) -> Array:
        """`values` on this backend with their dtype kept (for compact look-up tables)."""
        if self.is_torch:
            return torch.from_numpy(np.ascontiguousarray(values)).to(self.device)
        return values

    def full(self, shape: tuple[int, ...], value: int) -> Array:
        if self.is_torch:
            return torch.full(shape, value, dtype=torch.int64, device=self.device)
        return np.full(shape, value, dtype=np.int64)

    def count(self, mask: Array) -> int:
        if self.is_torch:
            return int(torch.count_nonzero(mask))
        return int(np.count_nonzero(mask))

    @property
    def on_host(self) -> bool:
        """Whether reading a value back costs nothing (an accelerator would synchronize)."""
        return not self.is_torch or self.device is None or torch.device(self.device).type == "cpu"

    def largest(self, values: Array) -> int:
        """The largest element (0 for none), as a Python int."""
        if self.is_torch:
            return int(values.max()) if values.numel() else 0
        return int(np.max(values)) if np.size(values) else 0

    def where(self, mask: Array, a: Array, b: Array) -> Array:
        if self.is_torch:
            return torch.where(mask, a, b)
        return np.where(mask, a, b)

    def clip(self, a: Array, low: int, high: int) -> Array:
        if self.is_torch:
            return torch.clamp(a, low, high)
        return np.clip(a, low, high)

    def minimum(self, a: Array, b: Array) -> Array:
        if self.is_torch:
            return torch.minimum(a, b)
        return np.minimum(a, b)

    def log2(self, values: Array) -> Array:
        """log2 as float64 (for reporting code lengths; never fed back to the coder)."""
        if self.is_torch:
            return torch.log2(values.to(torch.float64))
        return np.log2(np.asarray(values, dtype=np.float64))

    def concat(self, parts: list[Array]) -> Array:
        """Arrays joined along their first axis (a message group's rows)."""
        if self.is_torch:
            return torch.cat(parts)
        return np.concatenate(parts)

    def to_numpy(self, values: Array) -> np.ndarray:
        if self.is_torch:
            return values.detach().cpu().numpy()
        return np.asarray(values)

    # Word storage: numpy keeps uint32; torch keeps int32 holding the same 32 bits, since its
    # uint32 support is partial. Both convert to and from int64 values in [0, 2^32).
    def empty_words(self, capacity: int) -> Array:
        if self.is_torch:
            return torch.empty(capacity, dtype=torch.int32, device=self.device)
        return np.empty(capacity, dtype=np.uint32)

    def store_words(self, words: Array) -> Array:
        if self.is_torch:
            return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)
        return words.astype(np.uint32)

    def load_words(self, stored: Array) -> Array:
        if self.is_torch:
            return stored.to(torch.int64) & WORD_MASK
        return stored.astype(np.int64)

    def concat_words(self, a: Array, b: Array) -> Array:
        if self.is_torch:
            return torch.cat([a, b])
        return np.concatenate([a, b])


NUMPY = Backend("numpy")


def torch_backend(device: Any = "cpu") -> Backend:
    """The torch backend on `device` (a CUDA device when one is present, or the CPU)."""
    if torch is None:  # pragma: no cover
        raise RuntimeError("the torch backend needs torch: pip install 'torch>=2.2,<2.15'")
    return Backend("torch", torch.device(device))


def backend_of(values: Array) -> Backend:
    """The backend that holds `values`."""
    if torch is not None and isinstance(values, torch.Tensor):
        return Backend("torch", values.device)
    return NUMPY
