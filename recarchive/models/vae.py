"""The REC codec's VAE: a Gaussian latent sent by REC, pixels by ANS under exact integer tables.

One model family for both data sets (MNIST digits 28×28×1 as `rec-mnist`, 32×32 RGB blocks as
`rec-cifar-mlp`, the first `rec-cifar`): an MLP encoder x -> q(z|x) = N(mu, sigma²) over
`latent_dims`, the prior
p(z) = N(0, I) (what REC uses as shared randomness), and an MLP decoder z -> a discretized
logistic per pixel. MLPs because they train in minutes on one CPU core and every layer is a
1×1 convolution on a 1×1 "image", so the exact form reuses `FixedPointConv2d` as it is.

Why the decoder must be exact: the decoder of the codec rebuilds z bit for bit from REC's
shared randomness, then needs the very pixel CDFs the encoder used. So `convert_to_exact`
quantizes the trained float nets once (16-bit weights, 20-bit activations at 2^-12, ELU by
table, as in `exact_bitswap`) and the integer outputs index an integer `DiscretizedTable`.
The encoder net is made exact too, only so that encoding is reproducible (same bytes for any
batch size); decoding never runs it.

The float model mirrors what the tables can express, so its −ELBO is what the coder can reach:
pixel means clamped to [0, 255] and pixel scales to the table's grid. The grid reaches down to
0.02 (Bit-Swap's stops at 0.15) because MNIST is mostly exact 0s and 255s, which a scale of
0.15 would cap at P = 0.966 (0.05 bits a pixel, ~30 bits a digit).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch
from safetensors.torch import load
from torch import nn

from recarchive.entropy.discretized import DiscretizedTable, GridSpec
from recarchive.exact.fixed_point import FixedPointConv2d, FixedPointELU
from recarchive.exact.normal import default_table
from recarchive.models.bitswap import discretized_logistic_log_prob, elu
from recarchive.models.integer import (
    ACT_BITS,
    ACT_FRAC_BITS,
    MEAN_STEPS,
    OUT_BITS,
    PIXEL_INPUT_SCALE,
    PIXEL_MEAN_OFFSET,
    PIXEL_MEAN_SCALE,
    ScaleGrid,
    quantize_conv,
)
from recarchive.models.serialize import model_file_bytes

LOG2 = math.log(2.0)
FAMILY = "rec-vae"
PIXEL_PRECISION = 18
_STEP = 1 / 16
# Pixel scales exp(j/16) in symbol units, 0.02 .. 128; the net's log-scale is in pixel units
# already (unit 1).
PIXEL_GRID = ScaleGrid(_STEP, round(math.log(0.02) / _STEP),
                       round(math.log(128.0) / _STEP) - round(math.log(0.02) / _STEP) + 1)
PIXEL_LOG_SCALE_MIN = PIXEL_GRID.first * _STEP
PIXEL_LOG_SCALE_MAX = (PIXEL_GRID.first + PIXEL_GRID.count - 1) * _STEP
LATENT_FRAC_BITS = ACT_FRAC_BITS  # the decoder reads z as floor(z · 2^12)
POSTERIOR_LOG_SCALE_RANGE = (-7.0, 1.0)
POSTERIOR_LOG_SCALE_FRAC_BITS = 10


@dataclass(frozen=True)
class VAEConfig:
    """Shape of a REC VAE; stored in the model file."""

    channels: int = 1
    height: int = 28
    width: int = 28
    latent_dims: int = 32
    hidden: int = 512
    layers: int = 2  # hidden layers in each of encoder and decoder

    @property
    def pixels(self) -> int:
        return self.channels * self.height * self.width

    def to_dict(self) -> dict:
        return asdict(self)


def pixel_table_spec() -> GridSpec:
    return GridSpec("logistic", 256, MEAN_STEPS, PIXEL_GRID.scales(), PIXEL_PRECISION)


@lru_cache(maxsize=1)
def _pixel_table() -> DiscretizedTable:
    return DiscretizedTable(pixel_table_spec())


def _linear(cin: int, cout: int) -> nn.Conv2d:
    """A linear layer as a 1×1 convolution on (N, C, 1, 1), the shape the exact layer takes."""
    return nn.Conv2d(cin, cout, 1)


class MLP(nn.Module):
    """in -> `layers` × (linear, ELU) -> two heads (mean, log scale)."""

    def __init__(self, cin: int, hidden: int, layers: int, cout: int) -> None:
        super().__init__()
        widths = [cin] + [hidden] * layers
        self.hidden = nn.ModuleList(_linear(a, b) for a, b in zip(widths, widths[1:],
                                                                  strict=False))
        self.mean = _linear(hidden, cout)
        self.log_scale = _linear(hidden, cout)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = h.reshape(h.shape[0], -1, 1, 1)
        for layer in self.hidden:
            h = elu(layer(h))
        return self.mean(h).flatten(1), self.log_scale(h).flatten(1)


def pixels_to_input(x: torch.Tensor) -> torch.Tensor:
    """uint8-valued pixels (N, C·H·W) to [-1, 1] (exact: (2x - 255) / 255)."""
    return (2.0 * x - 255.0) / 255.0


class _InwardClamp(torch.autograd.Function):
    """Clamp forward (what the integer table does to means); backward, let a gradient through
    outside the range only where descent moves the value back in. A plain clamp strands a
    pixel whose mean fell below 0 with no gradient; a straight-through one lets means drift
    outward without bound (measured: training diverged within 100 steps)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return torch.clamp(x, lo, hi)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        outward = ((x < ctx.lo) & (grad > 0)) | ((x > ctx.hi) & (grad < 0))
        return torch.where(outward, torch.zeros_like(grad), grad), None, None


class VAE(nn.Module):
    """The float model: trained by the ELBO, and the source of the exact nets."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = MLP(config.pixels, config.hidden, config.layers, config.latent_dims)
        self.decoder = MLP(config.latent_dims, config.hidden, config.layers, config.pixels)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x) as (mean, log scale), x integer pixels (N, C·H·W)."""
        mean, log_scale = self.encoder(pixels_to_input(x))
        return mean, torch.clamp(log_scale, *POSTERIOR_LOG_SCALE_RANGE)

    def pixel_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """p(x|z) in pixel units, clamped to what the integer table can express."""
        mean, log_scale = self.decoder(z)
        mean = _InwardClamp.apply(127.5 + 127.5 * mean, 0.0, 255.0)
        return mean, torch.clamp(log_scale, PIXEL_LOG_SCALE_MIN, PIXEL_LOG_SCALE_MAX)

    def elbo_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image −ELBO parts in nats (one reparameterized sample), x (N, C·H·W) floats."""
        mean, log_scale = self.posterior(x)
        z = mean + torch.exp(log_scale) * torch.randn_like(mean)
        pm, pls = self.pixel_params(z)
        recon = -discretized_logistic_log_prob(x, pm, pls).sum(1)
        kl_dims = 0.5 * (torch.exp(2 * log_scale) + mean * mean - 1.0) - log_scale
        return {"recon": recon, "kl": kl_dims.sum(1), "kl_dims": kl_dims}

    def bits_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        """−ELBO in bits per dimension, per image (x: integer pixels, any shape (N, ...))."""
        x = x.reshape(x.shape[0], -1).float()
        terms = self.elbo_terms(x)
        return (terms["recon"] + terms["kl"]) / (x.shape[1] * LOG2)


# --- the exact form --------------------------------------------------------------------------


class ExactMLP(nn.Module):
    """Integer twin of `MLP`: integer input -> (integer mean, integer log scale), int64."""

    def __init__(self, hidden: list[FixedPointConv2d], mean: FixedPointConv2d,
                 log_scale: FixedPointConv2d, log_scale_range: tuple[int, int],
                 elu_table: FixedPointELU) -> None:
        super().__init__()
        self.hidden = nn.ModuleList(hidden)
        self.mean, self.log_scale = mean, log_scale
        self.log_scale_range = log_scale_range
        self.elu = elu_table

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = h.to(torch.float64).reshape(h.shape[0], -1, 1, 1)
        for layer in self.hidden:
            h = self.elu(layer(h))
        log_scale = torch.clamp(self.log_scale(h), *self.log_scale_range)
        return self.mean(h).flatten(1).to(torch.int64), log_scale.flatten(1).to(torch.int64)


def _convert_mlp(net: MLP, in_scale: float, mean_scale: float, log_scale_unit: float,
                 log_range: tuple[float, float], elu_table: FixedPointELU,
                 name: str) -> ExactMLP:
    act = 2.0**-ACT_FRAC_BITS

    def conv(layer: nn.Conv2d, scale_in: float, scale_out: float, out_bits: int,
             part: str) -> FixedPointConv2d:
        return quantize_conv(layer, scale_in, scale_out, out_bits, f"{name}.{part}")

    scales = [in_scale] + [act] * (len(net.hidden) - 1)
    hidden = [conv(layer, s, act, ACT_BITS, f"hidden{i}")
              for i, (layer, s) in enumerate(zip(net.hidden, scales, strict=True))]
    limits = (math.floor(log_range[0] / log_scale_unit), math.ceil(log_range[1] / log_scale_unit))
    return ExactMLP(hidden, conv(net.mean, act, mean_scale, OUT_BITS, "mean"),
                    conv(net.log_scale, act, log_scale_unit, OUT_BITS, "log_scale"),
                    limits, elu_table)


class ExactVAE(nn.Module):
    """The integer nets plus the pixel table they index; what the REC codec runs."""

    def __init__(self, config: VAEConfig, encoder: ExactMLP, decoder: ExactMLP) -> None:
        super().__init__()
        self.config = config
        self.encoder, self.decoder = encoder, decoder

    def table(self) -> DiscretizedTable:
        """The pixel table (built once per process: it depends on nothing but its spec)."""
        return _pixel_table()

    def posterior(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """q(z|x) for integer pixels x (N, C·H·W) as float64 (loc, scale) for REC's search.

        Only the encoder uses this; float `exp` here can only nudge which candidate wins.
        """
        mean, log_scale = self.encoder(2 * x.to(torch.int64) - 255)
        loc = mean.double() * 2.0**-LATENT_FRAC_BITS
        scale = torch.exp(log_scale.double() * 2.0**-POSTERIOR_LOG_SCALE_FRAC_BITS)
        return loc.numpy(), scale.numpy()

    def pixel_params(self, z_fixed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean in 1/16 pixel, scale index), int64 (N, C·H·W), from z as integers at 2^-12."""
        mean, log_scale = self.decoder(z_fixed)
        return mean + PIXEL_MEAN_OFFSET, PIXEL_GRID.index(log_scale)


def latent_fixed(atoms: torch.Tensor) -> torch.Tensor:
    """The decoder's integer input floor(z · 2^12) for z = the quantile table's atom values.

    Integer-only: the table's fixed point is round(z · 2^24), shifted down by 12.
    """
    table = default_table()
    shift = table.frac_bits - LATENT_FRAC_BITS
    return table.fixed_torch(atoms.device)[atoms.to(torch.int64)] >> shift


def convert_to_exact(model: VAE) -> ExactVAE:
    """Quantize a trained float model into its exact integer form."""
    model = model.cpu().eval()
    elu_table = FixedPointELU(ACT_FRAC_BITS)
    with torch.no_grad():
        encoder = _convert_mlp(model.encoder, PIXEL_INPUT_SCALE, 2.0**-LATENT_FRAC_BITS,
                               2.0**-POSTERIOR_LOG_SCALE_FRAC_BITS, POSTERIOR_LOG_SCALE_RANGE,
                               elu_table, "encoder")
        decoder = _convert_mlp(model.decoder, 2.0**-LATENT_FRAC_BITS, PIXEL_MEAN_SCALE,
                               PIXEL_GRID.step, (PIXEL_LOG_SCALE_MIN, PIXEL_LOG_SCALE_MAX),
                               elu_table, "decoder")
    return ExactVAE(model.config, encoder, decoder)


# --- model files -----------------------------------------------------------------------------


@dataclass
class LoadedVAE:
    exact: ExactVAE
    float_model: VAE
    metadata: dict
    rec: dict[str, np.ndarray]  # the codec's decoder-known REC tables (see `codecs.rec`)
    sha256: str
    data: bytes


def vae_model_bytes(model: VAE, rec_tables: dict[str, np.ndarray],
                    training: dict | None = None) -> bytes:
    """Serialize float weights, exact integer nets and the REC tables (integers) in one file."""
    from recarchive.models import zoo

    exact = convert_to_exact(model)
    tensors = {f"float.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"exact.{k}": _compact(v) for k, v in exact.state_dict().items()})
    tensors.update({f"rec.{k}": torch.from_numpy(np.ascontiguousarray(v))
                    for k, v in rec_tables.items()})
    metadata = {"format": zoo.FORMAT, "family": FAMILY,
                "config": json.dumps(model.config.to_dict(), sort_keys=True),
                "training": json.dumps(training or {}, sort_keys=True)}
    return model_file_bytes(tensors, metadata)


def _compact(tensor: torch.Tensor) -> torch.Tensor:
    """Integer buffers in the narrowest exact type: the 16-bit weights as int16 (half of what
    int32 takes; the CIFAR model's weights are most of its file), others as `zoo` does."""
    from recarchive.models import zoo

    out = zoo._compact_integers(tensor)
    if out.dtype == torch.int32 and (out.numel() == 0 or int(out.abs().max()) < 2**15):
        return out.to(torch.int16)
    return out


def load_vae_bytes(data: bytes, expected_sha256: str | None, source: str) -> LoadedVAE:
    """Parse and check a REC VAE model file's bytes (sha256 first, then structure)."""
    from recarchive.models import zoo

    digest = zoo.sha256_of(data)
    if expected_sha256 is not None and digest != expected_sha256:
        raise zoo.ModelError(f"model {source} has sha256 {digest}, expected {expected_sha256}: "
                             "the file is damaged or is another model")
    try:
        metadata = zoo._metadata(data)
        tensors = load(data)
    except Exception as error:  # safetensors raises several types for damaged files
        raise zoo.ModelError(f"model {source} is not a readable safetensors file: {error}") \
            from error
    if metadata.get("format") != zoo.FORMAT or metadata.get("family") != FAMILY:
        raise zoo.ModelError(f"model {source} is not a {zoo.FORMAT} REC VAE model: {metadata}")
    config = VAEConfig(**json.loads(metadata["config"]))
    float_model = VAE(config)
    float_model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("float.")})
    exact = convert_to_exact(VAE(config))  # the skeleton; weights come from the file
    exact.load_state_dict({k[6:]: v.to(torch.float64) if not v.is_floating_point() else v
                           for k, v in tensors.items() if k.startswith("exact.")})
    for module in exact.modules():
        if isinstance(module, FixedPointConv2d):
            module.check_bound()
    rec = {k[4:]: v.numpy() for k, v in tensors.items() if k.startswith("rec.")}
    return LoadedVAE(exact, float_model.eval(), metadata, rec, digest, data)


def load_vae(name_or_path: str, expected_sha256: str | None = None) -> LoadedVAE:
    from recarchive.models import zoo

    data, shipped_sha, source = zoo.resolve_model(name_or_path)
    return load_vae_bytes(data, expected_sha256 or shipped_sha, source)


def flat_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 images (N, H, W, C) -> int64 (N, C·H·W) in the model's channel-major order."""
    x = torch.from_numpy(np.array(images))
    if x.ndim == 3:
        x = x[..., None]
    return x.permute(0, 3, 1, 2).reshape(x.shape[0], -1).to(torch.int64)
