"""Shipped models: safetensors files named and addressed by their sha256.

A model file holds the exact integer tensors the codec runs (`exact.*`), the float weights
they came from (`float.*`, for the −ELBO and for fine-tuning) and metadata (family, config,
training record). Loading always verifies the file's sha256 against what the caller expects:
the name's entry in `SHIPPED`, or the hash an archive recorded. No pickle anywhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load

from recarchive.models.bitswap import BitSwapConfig, BitSwapModel
from recarchive.models.causal import CausalConfig, CausalPixelModel
from recarchive.models.causal_latent import CausalLatentVAE
from recarchive.models.exact_bitswap import (
    FIRST_LAYOUT,
    LATENT_LAYOUTS,
    ExactBitSwap,
    convert_to_exact,
)
from recarchive.models.exact_causal import ExactCausalModel
from recarchive.models.exact_causal import convert_to_exact as causal_to_exact
from recarchive.models.serialize import model_file_bytes
from recarchive.models.shipped import SHIPPED, ZOO_DIR

FORMAT = "recarchive-model/1"


class ModelError(ValueError):
    """A model file is missing, damaged, or not the one asked for."""


@dataclass
class LoadedModel:
    exact: ExactBitSwap
    float_model: BitSwapModel
    metadata: dict
    sha256: str
    data: bytes
    # decoder-known REC tables (`codecs.rec`), in the files of Gaussian models made for REC
    rec: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class LoadedCausal:
    exact: ExactCausalModel
    float_model: CausalPixelModel
    metadata: dict
    sha256: str
    data: bytes


@dataclass
class LoadedCausalLatent:
    """The REC codec's latent causal model (`models.causal_latent`): `exact` its pixel nets
    in integers, `float_model` the float nets (its encoder is q(z|x), which only the encoder's
    choice reads), its REC tables."""

    exact: ExactCausalModel
    float_model: CausalLatentVAE
    metadata: dict
    sha256: str
    data: bytes
    rec: dict[str, np.ndarray] = field(default_factory=dict)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bitswap_model_bytes(model: BitSwapModel, training: dict | None = None,
                        rec_tables: dict[str, np.ndarray] | None = None) -> bytes:
    """Serialize a trained float model together with its exact conversion (and, for a model
    made for REC, its REC tables)."""
    exact = convert_to_exact(model)
    return _file_bytes(model, exact, {
        "family": "bitswap", "latent_layout": exact.layout.name,
        "config": json.dumps(model.config.to_dict(), sort_keys=True),
        "training": json.dumps(training or {}, sort_keys=True)}, rec_tables)


def _narrow(values: np.ndarray) -> np.ndarray:
    """Integer tables in int32 where they fit (the index-code CDFs: half the bytes); readers
    widen them again."""
    if values.dtype == np.int64 and (values.size == 0 or (
            int(values.min()) >= -(1 << 31) and int(values.max()) < 1 << 31)):
        return values.astype(np.int32)
    return values


def _compact_integers(tensor: torch.Tensor) -> torch.Tensor:
    """Integer-valued float64 buffers in the narrowest of int16 (the 16-bit weights), int32
    and int64 that holds them: exact, and an eighth to a half of the bytes (archives carry a
    copy of every model they use). Loading copies them back into float64 buffers."""
    tensor = tensor.detach().cpu().clone().contiguous()
    if tensor.dtype != torch.float64 or not torch.equal(tensor, tensor.round()):
        return tensor
    peak = float(tensor.abs().max()) if tensor.numel() else 0.0
    for dtype in (torch.int16, torch.int32):
        if peak < torch.iinfo(dtype).max:
            return tensor.to(dtype)
    return tensor.to(torch.int64)


def _metadata(data: bytes) -> dict:
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    return header.get("__metadata__", {})


def model_family(data: bytes) -> str:
    """What a model file's metadata says it is ("bitswap", "vae", ...; "" if unreadable)."""
    try:
        return str(_metadata(data).get("family", ""))
    except (ValueError, UnicodeDecodeError):
        return ""


def load_bitswap_bytes(data: bytes, expected_sha256: str | None, source: str) -> LoadedModel:
    """Parse and check a Bit-Swap model file's bytes."""
    digest, metadata, tensors = _checked(data, expected_sha256, source, "bitswap", "Bit-Swap")
    try:
        config = BitSwapConfig(**json.loads(metadata["config"]))
    except (TypeError, ValueError) as error:  # a shape (a pixel context, …) not known here
        raise ModelError(f"model {source} has a shape this recarchive does not know "
                         f"({error}): use the recarchive release that made it") from error
    layout_name = metadata.get("latent_layout", FIRST_LAYOUT.name)
    if layout_name not in LATENT_LAYOUTS:
        raise ModelError(f"model {source} codes its latents in layout {layout_name!r}, which "
                         f"this recarchive does not know ({', '.join(LATENT_LAYOUTS)}): "
                         "use the recarchive release that made it")
    float_model = BitSwapModel(config)
    float_model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("float.")})
    # The skeleton of the layout the file was converted for, from the stored float model (an
    # int8 model's activation scales shape its nets); the integer weights come from the file.
    exact = convert_to_exact(float_model, LATENT_LAYOUTS[layout_name])
    _load_exact(exact, tensors)
    rec = {k[4:]: v.numpy() for k, v in tensors.items() if k.startswith("rec.")}
    return LoadedModel(exact, float_model.eval(), metadata, digest, data, rec)


def causal_model_bytes(model: CausalPixelModel, training: dict | None = None) -> bytes:
    """Serialize a trained causal pixel model with its exact conversion."""
    return _file_bytes(model, causal_to_exact(model), {
        "family": "causal", "config": json.dumps(model.config.to_json(), sort_keys=True),
        "training": json.dumps(training or {}, sort_keys=True)})


def causal_latent_model_bytes(model: CausalLatentVAE, training: dict | None = None,
                              rec_tables: dict[str, np.ndarray] | None = None) -> bytes:
    """Serialize the REC codec's latent causal model: float weights (encoder and pixel nets),
    the pixel nets' exact conversion and the REC tables."""
    return _file_bytes(model, causal_to_exact(model.pixels), {
        "family": "causal-latent", "config": json.dumps(model.config.to_json(), sort_keys=True),
        "training": json.dumps(training or {}, sort_keys=True)}, rec_tables)


def load_causal_latent_bytes(data: bytes, expected_sha256: str | None,
                             source: str) -> LoadedCausalLatent:
    """Parse and check a latent causal model file's bytes."""
    digest, metadata, tensors = _checked(data, expected_sha256, source, "causal-latent",
                                         "latent causal")
    try:
        config = CausalConfig(**json.loads(metadata["config"]))
        float_model = CausalLatentVAE(config, len(tensors["float.encoder.net.0.weight"]))
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"model {source} has a shape this recarchive does not know "
                         f"({error}): use the recarchive release that made it") from error
    float_model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("float.")})
    exact = causal_to_exact(float_model.pixels)
    _load_exact(exact, tensors)
    rec = {k[4:]: v.numpy() for k, v in tensors.items() if k.startswith("rec.")}
    return LoadedCausalLatent(exact, float_model.eval(), metadata, digest, data, rec)


def _load_exact(exact: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """The file's integer weights into `exact`, each layer's bound checked."""
    exact.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("exact.")})
    for module in exact.modules():
        if hasattr(module, "check_bound"):
            module.check_bound()


def _file_bytes(model: torch.nn.Module, exact: torch.nn.Module, metadata: dict,
                rec_tables: dict[str, np.ndarray] | None = None) -> bytes:
    """A model file: the float weights, their exact conversion (integers compacted), any REC
    tables and the metadata (with the format)."""
    tensors = {f"float.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"exact.{k}": _compact_integers(v) for k, v in exact.state_dict().items()})
    tensors.update({f"rec.{k}": torch.from_numpy(np.ascontiguousarray(_narrow(v)))
                    for k, v in (rec_tables or {}).items()})
    return model_file_bytes(tensors, {"format": FORMAT, **metadata})


def _checked(data: bytes, expected_sha256: str | None, source: str, family: str,
             what: str) -> tuple[str, dict, dict[str, torch.Tensor]]:
    """(sha256, metadata, tensors) of a model file of `family`, or ModelError naming it."""
    digest = sha256_of(data)
    if expected_sha256 is not None and digest != expected_sha256:
        raise ModelError(f"model {source} has sha256 {digest}, expected {expected_sha256}: "
                         "the file is damaged or is another model")
    try:
        metadata = _metadata(data)
        tensors = load(data)
    except Exception as error:  # safetensors raises several types for damaged files
        raise ModelError(f"model {source} is not a readable safetensors file: {error}") from error
    if metadata.get("format") != FORMAT or metadata.get("family") != family:
        raise ModelError(f"model {source} is not a {FORMAT} {what} model: {metadata}")
    return digest, metadata, tensors


def load_causal_bytes(data: bytes, expected_sha256: str | None, source: str) -> LoadedCausal:
    """Parse and check a causal pixel model file's bytes."""
    digest, metadata, tensors = _checked(data, expected_sha256, source, "causal",
                                         "causal pixel")
    try:
        config = CausalConfig(**json.loads(metadata["config"]))
    except (TypeError, ValueError) as error:
        raise ModelError(f"model {source} has a shape this recarchive does not know "
                         f"({error}): use the recarchive release that made it") from error
    float_model = CausalPixelModel(config)
    float_model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("float.")})
    exact = causal_to_exact(float_model)
    _load_exact(exact, tensors)
    return LoadedCausal(exact, float_model.eval(), metadata, digest, data)


def load_causal(name_or_path: str, expected_sha256: str | None = None) -> LoadedCausal:
    data, shipped_sha, source = resolve_model(name_or_path)
    return load_causal_bytes(data, expected_sha256 or shipped_sha, source)


def resolve_model(name_or_path: str) -> tuple[bytes, str | None, str]:
    """(file bytes, expected sha256 or None, description) for a zoo name or a file path."""
    if name_or_path in SHIPPED:
        path = ZOO_DIR / f"{name_or_path}.safetensors"
        if not path.exists():
            raise ModelError(f"shipped model {name_or_path} is missing from {ZOO_DIR}")
        return path.read_bytes(), SHIPPED[name_or_path], name_or_path
    path = Path(name_or_path)
    if path.exists():
        return path.read_bytes(), None, str(path)
    known = ", ".join(sorted(SHIPPED)) or "none yet"
    raise ModelError(f"unknown model {name_or_path!r}: give a shipped name ({known}) or a path")


def load_bitswap(name_or_path: str, expected_sha256: str | None = None) -> LoadedModel:
    data, shipped_sha, source = resolve_model(name_or_path)
    return load_bitswap_bytes(data, expected_sha256 or shipped_sha, source)


def float_model_from_checkpoint(path: Path, use_ema: bool = True) -> BitSwapModel:
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = BitSwapModel(BitSwapConfig(**state["config"]))
    model.load_state_dict(state["ema" if use_ema else "model"])
    return model.eval()
