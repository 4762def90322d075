"""Codec names to factories, so archives can name the codec that made each shard."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recarchive.codecs.base import BlockCodec, CodecError

_FACTORIES: dict[str, Callable[..., BlockCodec]] = {}


def register_codec(name: str, factory: Callable[..., BlockCodec]) -> None:
    _FACTORIES[name] = factory


def available_codecs() -> list[str]:
    _load_builtin()
    return sorted(_FACTORIES)


def get_codec(name: str, **options: Any) -> BlockCodec:
    """A codec by name; options are codec-specific (for example `model=`)."""
    _load_builtin()
    if name not in _FACTORIES:
        raise CodecError(f"unknown codec {name!r}; available: {', '.join(sorted(_FACTORIES))}")
    return _FACTORIES[name](**options)


def _bitswap(model: str = "bitswap-cifar", model_bytes: bytes | None = None,
             model_sha256: str | None = None, **options: Any) -> BlockCodec:
    """Bit-Swap with a shipped model, a model file, or model bytes (from an archive); RGB by
    the model, other layouts split (see `codecs.channels`)."""
    from recarchive.codecs.bitswap import BitSwapCodec
    from recarchive.codecs.channels import ChannelSplitCodec
    from recarchive.models import zoo

    if model_bytes is not None:
        loaded = zoo.load_bitswap_bytes(model_bytes, model_sha256, "archive model copy")
    else:
        loaded = zoo.load_bitswap(model, model_sha256)
    rgb = BitSwapCodec(loaded.exact, loaded.sha256, model_bytes=loaded.data, **options)
    return ChannelSplitCodec(rgb)


def _rec(model: str = "rec-cifar", model_bytes: bytes | None = None,
         model_sha256: str | None = None, **options: Any) -> BlockCodec:
    """REC with a shipped model, a model file, or model bytes (from an archive): an MLP VAE
    file, a one-layer Gaussian Bit-Swap file or a latent causal file (`codecs.rec_models`)."""
    from recarchive.codecs.rec import RecCodec
    from recarchive.codecs.rec_models import CausalRecModel, ConvRecModel, VaeRecModel
    from recarchive.models import vae, zoo

    if "chains" in options:  # the shared --chains option: REC's ANS lanes
        options["lanes"] = options.pop("chains")
    if model_bytes is not None:
        data, source = model_bytes, "archive model copy"
    else:
        data, shipped_sha, source = zoo.resolve_model(model)
        model_sha256 = model_sha256 or shipped_sha
    family = zoo.model_family(data)
    if family == "bitswap":
        adapter: Any = ConvRecModel(zoo.load_bitswap_bytes(data, model_sha256, source))
    elif family == "causal-latent":
        adapter = CausalRecModel(zoo.load_causal_latent_bytes(data, model_sha256, source))
    else:
        adapter = VaeRecModel(vae.load_vae_bytes(data, model_sha256, source))
    return RecCodec(adapter, **options)


def _causal(model: str = "causal-photo", model_bytes: bytes | None = None,
            model_sha256: str | None = None, **options: Any) -> BlockCodec:
    """The causal pixel codec with a shipped model, a model file, or model bytes (from an
    archive); RGB by the model, other layouts split (see `codecs.channels`)."""
    from recarchive.codecs.causal import ADAPT_VERSION, ADAPT_VERSIONS, CausalCodec
    from recarchive.codecs.channels import ChannelSplitCodec
    from recarchive.models import zoo

    options.pop("chains", None)  # the shared --chains option: lanes follow the shard here
    # 0: code without adapting, 1: without the residual histograms (measurements)
    adapt = options.pop("adapt", ADAPT_VERSION)
    if options:
        raise CodecError(f"codec 'causal' takes no options {sorted(options)}")
    if adapt not in ADAPT_VERSIONS:
        raise CodecError(f"codec 'causal': adapt is one of {ADAPT_VERSIONS}, not {adapt!r}")
    if model_bytes is not None:
        loaded = zoo.load_causal_bytes(model_bytes, model_sha256, "archive model copy")
    else:
        loaded = zoo.load_causal(model, model_sha256)
    return ChannelSplitCodec(CausalCodec(loaded.exact, loaded.sha256, loaded.data,
                                         loaded.float_model, adapt))


def _load_builtin() -> None:
    if "order0" not in _FACTORIES:
        from recarchive.codecs.order0 import Order0Codec

        register_codec("order0", Order0Codec)
        register_codec("bitswap", _bitswap)
        register_codec("rec", _rec)
        register_codec("causal", _causal)
