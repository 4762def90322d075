"""Model files as bytes that depend only on their contents.

safetensors writes a file's metadata in the order of a hash map seeded per process, so the
same model saved twice came out as different bytes, and a model's identity is the sha256 of
its file. Rewriting the header with sorted keys makes one model one file, however often it
is exported (tested)."""

from __future__ import annotations

import json

import torch
from safetensors.torch import save

HEADER_ALIGNMENT = 8  # safetensors pads its JSON header with spaces to a multiple of 8


def model_file_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """`tensors` and string `metadata` as a safetensors file with a canonical header."""
    data = save(tensors, metadata)
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % HEADER_ALIGNMENT)
    return len(text).to_bytes(8, "little") + text + data[8 + length :]
