"""Training Bit-Swap models: CIFAR-10 (`bitswap-cifar`) or 32×32 photo patches (`bitswap-photo`).

The loop is `training.loop`'s (checkpoints, resume, Polyak weights, validation −ELBO on the
held-back split, never the test set); this module gives it Bit-Swap's data, loss (free bits,
flips, optional bfloat16) and fine-tuning starts.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from recarchive.models.bitswap import (
    BORDER_PIXELS,
    NEIGHBOURS,
    ActivationQuantizer,
    BitSwapConfig,
    BitSwapModel,
    border_canvas,
)
from recarchive.training import loop


@dataclass
class TrainSettings:
    dataset: str = "cifar10"  # or "photo"
    steps: int = 20_000
    batch_size: int = 64
    learning_rate: float = 2e-3
    warmup_steps: int = 500
    free_bits: float = 0.1  # bits per latent dimension, per layer (Bit-Swap's free bits)
    # REC's models: the pixels learn from latent samples this many times wider than the
    # posterior (`BitSwapModel.elbo_terms`)
    latent_noise: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    checkpoint_every: int = 500
    validate_every: int = 1000
    validation_images: int = 2000
    max_minutes: float | None = None
    device: str = "auto"
    # bfloat16 autocast for the nets' residual blocks (see ConditionalNet.forward); validation
    # and the shipped weights stay float32
    bfloat16: bool = False
    # start a fresh run from other weights (fine-tuning): a run's checkpoint.pt, a model
    # file or a shipped model's name (the float weights every model file carries)
    init_from: str | None = None
    config: BitSwapConfig = field(default_factory=BitSwapConfig)


# With a block context, a training block comes with its real neighbours: photo crops of
# 32 + 2·BORDER_PIXELS, the block in the middle; each neighbour is known with this chance, as
# blocks inside an image know all four and blocks on its (or a shard's) first row or column
# fewer.
NEIGHBOUR_KNOWN = 0.75


def load_training_data(dataset: str, seed: int,
                       config: BitSwapConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) uint8 NHWC images (photo crops with their ring, for a model with a
    block context)."""
    from recarchive import datasets

    if dataset == "cifar10":
        return datasets.cifar10_split("train"), datasets.cifar10_split("validation")
    if dataset == "photo":
        size = 32 + 2 * BORDER_PIXELS if config and config.block_context != "none" else 32
        train = datasets.random_patches(datasets.photo_files("train"), 200_000, seed, size)
        val = datasets.random_patches(datasets.photo_files("validation"), 5_000, seed + 1, size)
        return train, val
    raise ValueError(f"unknown training dataset {dataset!r}: use cifar10 or photo")


def split_crops(crops: torch.Tensor, known: float,
                generator: torch.Generator | None = None):
    """(N, C, 36, 36) crops -> the blocks in their middle and their rings (`border_canvas`),
    each neighbour known with probability `known`; 32×32 images (CIFAR-10) have no ring."""
    if crops.shape[-1] == 32:
        return crops, None
    available = (torch.rand((crops.shape[0], len(NEIGHBOURS)), generator=generator)
                 < known).to(crops.device)
    b = BORDER_PIXELS
    return crops[..., b:-b, b:-b], border_canvas(crops, available)


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.array(images)).to(device).permute(0, 3, 1, 2).float()


@torch.no_grad()
def validation_bits_per_dim(model: BitSwapModel, images: np.ndarray, device, batch=250) -> float:
    """−ELBO of the validation blocks (with every neighbour known, where crops have a ring)."""
    torch.manual_seed(1234)
    total = 0.0
    for start in range(0, len(images), batch):
        x, ring = split_crops(to_tensor(images[start : start + batch], device), 1.0)
        total += float(model.bits_per_dim(x, ring).sum())
    return total / len(images)


def initial_weights(source: str, config: BitSwapConfig) -> tuple[dict, str]:
    """Float weights to fine-tune from, and where they came from.

    A checkpoint gives its Polyak-averaged weights; a model file or shipped name gives the float
    weights stored beside the exact ones, so a retraining can start from what ships even when
    the run that made it is gone."""
    from recarchive.models import zoo

    if source.endswith(".pt"):
        state = torch.load(source, map_location="cpu", weights_only=False)
        found, weights = BitSwapConfig(**state["config"]), state["ema"]
        origin = f"checkpoint step {state['step']}"
    else:
        loaded = zoo.load_bitswap(source)
        found, weights = loaded.float_model.config, loaded.float_model.state_dict()
        origin = f"model sha256 {loaded.sha256[:12]}"
    # A model without a context may start one with a context: only the context net is new.
    # A model may gain a pixel or block context it lacked: only those nets are new.
    # A model may gain a coarse path (reach "block"): it starts switched off.
    # A fixed64 model may be fine-tuned into int8 arithmetic (quantization-aware training).
    # A logistic (Bit-Swap) model may seed a Gaussian one with fewer layers (REC's VAE): its
    # bottom layers' nets are kept, the layers above dropped.
    grown = replace(found, pixel_context=config.pixel_context, block_context=config.block_context,
                    arithmetic=config.arithmetic, latent=config.latent,
                    channel_context=config.channel_context, reach=config.reach)
    # A checkerboard grows into an interlace: its context net's weights move to the channels
    # the interlace's last stage (the checkerboard's second) reads and corrects.
    kept = (found.pixel_context in ("none", config.pixel_context)
            or (found.pixel_context, config.pixel_context) == ("checkerboard", "interlace"))
    kept = kept and found.block_context in ("none", config.block_context)
    kept = kept and found.arithmetic in ("fixed64", config.arithmetic)
    kept = kept and found.channel_context in ("none", config.channel_context)
    kept = kept and found.reach in ("local", config.reach)
    if found.latent != config.latent and config.latent_layers < found.latent_layers:
        grown = replace(grown, latent_layers=config.latent_layers)
        weights = {key: value for key, value in weights.items()
                   if not key.startswith(("infer.", "generate."))
                   or int(key.split(".")[1]) < config.latent_layers}
    if found != config and not (kept and grown == config):
        raise ValueError(f"--init-from {source} has the shape {found.to_dict()}, but this run "
                         f"asks for {config.to_dict()}: pass the same --width, --res-blocks, "
                         "--latent-layers and --latent-channels (a model with a pixel or block "
                         "context fine-tunes only with the same --pixel-context and "
                         "--block-context)")
    return weights, origin


def load_initial_weights(model: BitSwapModel, weights: dict) -> None:
    """Load fine-tuning weights; a model given a pixel context its source lacked keeps its
    fresh context net, which starts switched off. A model given a block context gets its
    source's input convs with zero weights for the ring's channels beside them: its nets
    compute exactly what the source's did until training moves those weights (weight
    normalization's norms do not see zero columns)."""
    own = model.state_dict()
    weights = dict(weights)
    if model.config.pixel_context == "interlace":
        weights = _checkerboard_to_interlace(weights, own, model.config)
    for key, value in weights.items():
        wanted = own.get(key)
        if (wanted is not None and key.startswith(("generate.0.mean.", "generate.0.log_scale."))
                and value.shape[0] < wanted.shape[0] and value.shape[1:] == wanted.shape[1:]):
            # a channel context's coefficients: new output rows with gain and bias 0 (the
            # directions stay nonzero for weight normalization)
            grown = torch.zeros_like(wanted)
            grown[: value.shape[0]] = value
            if key.endswith("original1"):
                grown[value.shape[0] :] = wanted[value.shape[0] :]
            weights[key] = grown
            continue
        if (wanted is not None and key.endswith("inp.parametrizations.weight.original1")
                and value.shape[1] < wanted.shape[1] and value.shape[2:] == wanted.shape[2:]):
            grown = torch.zeros_like(wanted)
            grown[:, : value.shape[1]] = value
            weights[key] = grown
    result = model.load_state_dict(weights, strict=False)
    stray = list(result.unexpected_keys) + [k for k in result.missing_keys
                                            if not k.startswith("context.")
                                            and ".coarse." not in k
                                            and not k.endswith(".frac")]
    if stray:
        raise ValueError(f"initial weights do not fit this model: {stray[:5]}")


def _checkerboard_to_interlace(weights: dict, own: dict, config: BitSwapConfig) -> dict:
    """A checkerboard context net's weights laid out for an interlace context net, which then
    computes for the interlace's last stage exactly what the checkerboard's computed for its
    second, and nothing for the other stages (their output gains and biases 0)."""
    source = weights.get("context.inp.parametrizations.weight.original1")
    target = own["context.inp.parametrizations.weight.original1"]
    if source is None or source.shape == target.shape:
        return weights
    first, second = (list(stage) for stage in replace(config, pixel_context="checkerboard")
                     .pixel_stages())
    zc, dc = config.latent_channels, config.data_channels
    columns = list(range(zc)) + [zc + c for c in first]
    columns += list(range(zc + dc + 4, target.shape[1]))  # the ring's channels, if any
    weights = dict(weights)
    grown = torch.zeros_like(target)
    grown[:, columns] = source
    weights["context.inp.parametrizations.weight.original1"] = grown
    for head in ("mean", "log_scale"):
        for part in ("parametrizations.weight.original0", "parametrizations.weight.original1",
                     "bias"):
            key = f"context.{head}.{part}"
            grown = own[key].clone() if part.endswith("original1") else torch.zeros_like(own[key])
            grown[second] = weights[key]
            weights[key] = grown
    return weights


CALIBRATION_IMAGES = 1000


def calibrate_activations(model: BitSwapModel, images: np.ndarray, device) -> None:
    """Give every quantized activation of an int8 model the finest grid that holds the largest
    value it takes on `images` (training images: the scales are chosen once, then kept)."""
    quantizers = [m for m in model.modules() if isinstance(m, ActivationQuantizer)]
    for quantizer in quantizers:
        quantizer.frac.fill_(-1)
        quantizer.peak = 0.0
    with torch.no_grad():
        for start in range(0, len(images), 250):
            x, ring = split_crops(to_tensor(images[start : start + 250], device), 1.0)
            model.elbo_terms(x, ring=ring)
    for quantizer in quantizers:
        quantizer.calibrate()


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def train(settings: TrainSettings, out_dir: Path, log=print) -> Path:
    """Train (or resume) into `out_dir`; returns the checkpoint path (`training.loop`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / "checkpoint.pt"
    device = _resolve_device(settings.device)
    torch.manual_seed(settings.seed)
    model = BitSwapModel(settings.config).to(device)
    ema = copy.deepcopy(model)
    optimizer = torch.optim.Adamax(model.parameters(), lr=settings.learning_rate)
    resumed = loop.load_checkpoint(checkpoint, model, ema, optimizer, device)
    train_images, val_images = load_training_data(settings.dataset, settings.seed,
                                                  settings.config)
    started_from = None  # what a fine-tune started from, kept for the model file's record
    if resumed is not None:
        started_from = resumed.get("init_from")
    else:
        if settings.init_from is not None:
            weights, origin = initial_weights(settings.init_from, settings.config)
            load_initial_weights(model, weights)
            started_from = f"{settings.init_from} ({origin})"
            log(f"initialized from {started_from}")
        if settings.config.arithmetic == "int8":  # fresh or fine-tuned: grids before step 1
            calibrate_activations(model, train_images[:CALIBRATION_IMAGES], device)
        ema.load_state_dict(model.state_dict())
    val_images = val_images[: settings.validation_images]

    def batch_loss(batch: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        x = to_tensor(batch, device)
        if rng.random() < 0.5:
            x = x.flip(3)  # horizontal flips (of whole crops: the ring stays above and left)
        x, ring = split_crops(x, NEIGHBOUR_KNOWN)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.bfloat16):
            terms = model.elbo_terms(x, settings.free_bits, ring, settings.latent_noise)
        return (terms["recon"] + terms["kl_train"]).mean() / (x[0].numel() * math.log(2))

    return loop.run(settings, model=model, ema=ema, optimizer=optimizer, checkpoint=checkpoint,
                    train_images=train_images, batch_loss=batch_loss,
                    validate=lambda net: validation_bits_per_dim(net, val_images, device),
                    keep={"config": settings.config.to_dict(), "init_from": started_from},
                    resumed=resumed, clip_norm=200.0, log=log)
