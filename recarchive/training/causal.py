"""Training the causal pixel model (`models.causal`) on photo crops or CIFAR-10 images.

The loop is `training.loop`'s. A photo minibatch is random crops (default 64×64) of random
training photos, each coded as a picture alone, so the model learns from picture edges as
often as coding meets them at shard and picture borders; validation codes the validation
photos whole (the figure `bench codec --dataset photo-val-images` measures, before the
integer conversion and the archive's padding). On CIFAR-10 a minibatch is whole images.

With `latent_channels` > 0 it trains the REC codec's model instead (`models.causal_latent`):
32×32 crops (CIFAR-10: whole images), the −ELBO of each with one sample of its latent, the KL's
weight warmed up from 0 to 1 over `kl_warmup_steps`; validation is the −ELBO (weight 1) of
validation images, or of 32×32 blocks of the validation photos.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from recarchive import datasets
from recarchive.models import zoo
from recarchive.models.causal import (
    CausalConfig,
    CausalPixelModel,
    with_latent,
    with_neighbours,
    with_width,
)
from recarchive.models.causal_latent import BLOCK, CausalLatentVAE
from recarchive.training import loop

DEFAULT_WIDTH = 64


@dataclass
class CausalSettings:
    dataset: str = "photo"  # or "cifar10"
    width: int | None = None  # hidden units per colour: 64 from scratch, the start model's
    # own with `init_from` (widened to this where it is narrower)
    mixtures: int = 3
    neighbours: int = 12  # of `models.causal.NEIGHBOURHOOD`
    init_from: str | None = None  # a model (name or file) to start from, widened if need be
    # (to `neighbours` and to `width`, where they exceed its own)
    crop: int = 64
    steps: int = 3000
    batch_size: int = 16
    learning_rate: float = 2e-3
    warmup_steps: int = 100
    ema_decay: float = 0.999
    seed: int = 0
    checkpoint_every: int = 500
    validate_every: int = 500
    validation_images: int = 500  # CIFAR-10 only: the last N validation images
    max_minutes: float | None = None
    latent_channels: int = 0  # > 0: the REC codec's latent model (`models.causal_latent`)
    kl_warmup_steps: int = 500
    free_bits: float = 0.0  # per latent channel and block (`CausalLatentVAE.neg_elbo_bits`)


def load_pictures(dataset: str, validation_images: int
                  ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(training, validation) pictures as uint8 (H, W, 3) arrays."""
    if dataset == "photo":
        def read(split: str) -> list[np.ndarray]:
            out = []
            for path in datasets.photo_files(split):
                with Image.open(path) as image:
                    out.append(np.array(image.convert("RGB")))
            return out

        return read("train"), read("validation")
    if dataset == "cifar10":
        train = datasets.cifar10_split("train")
        return list(train), list(datasets.cifar10_split("validation")[-validation_images:])
    raise ValueError(f"unknown training dataset {dataset!r}: use photo or cifar10")


def random_crops(pictures: list[np.ndarray], chosen: np.ndarray, size: int,
                 rng: np.random.Generator) -> torch.Tensor:
    """One random size×size crop (or the whole picture, if smaller) of each chosen picture."""
    first = pictures[int(chosen[0])]
    size = min(size, *first.shape[:2])
    out = np.empty((len(chosen), size, size, 3), np.uint8)
    for i, k in enumerate(chosen):
        picture = pictures[int(k)]
        y = rng.integers(picture.shape[0] - size + 1)
        x = rng.integers(picture.shape[1] - size + 1)
        out[i] = picture[y:y + size, x:x + size]
    return torch.from_numpy(out)


def bits_per_dim(model: CausalPixelModel, pictures: list[np.ndarray]) -> float:
    """Float bits/dim of pictures each coded whole (same-size pictures batched)."""
    total, dims = 0.0, 0
    with torch.no_grad():
        by_shape: dict[tuple[int, ...], list[np.ndarray]] = {}
        for picture in pictures:
            by_shape.setdefault(picture.shape, []).append(picture)
        for group in by_shape.values():
            for start in range(0, len(group), 256):
                batch = torch.from_numpy(np.stack(group[start:start + 256]))
                total += float(model.neg_log_likelihood_bits(batch))
                dims += batch.numel()
    return total / dims


def train(settings: CausalSettings, out_dir: Path, log=print) -> Path:
    """Train into `out_dir/checkpoint.pt` (`jobs/export_causal.py` makes a model file of it)."""
    if settings.latent_channels:
        return train_latent(settings, out_dir, log)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / "checkpoint.pt"
    torch.manual_seed(settings.seed)
    if settings.init_from:
        start = zoo.load_causal(settings.init_from).float_model
        model = with_width(with_neighbours(start, settings.neighbours),
                           max(settings.width or 0, start.config.width), seed=settings.seed)
        model.train()
    else:
        model = CausalPixelModel(CausalConfig(width=settings.width or DEFAULT_WIDTH,
                                              mixtures=settings.mixtures,
                                              neighbours=settings.neighbours)).train()
    ema = copy.deepcopy(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    resumed = loop.load_checkpoint(checkpoint, model, ema, optimizer)
    train_pictures, val_pictures = load_pictures(settings.dataset, settings.validation_images)

    def batch_loss(chosen: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        crops = random_crops(train_pictures, chosen, settings.crop, rng)
        return model.neg_log_likelihood_bits(crops) / crops.numel()

    return loop.run(settings, model=model, ema=ema, optimizer=optimizer, checkpoint=checkpoint,
                    train_images=np.arange(len(train_pictures)), batch_loss=batch_loss,
                    validate=lambda net: bits_per_dim(net, val_pictures),
                    keep={"config": model.config.to_json(), "settings": asdict(settings)},
                    resumed=resumed, clip_norm=100.0, log=log)


def photo_blocks(pictures: list[np.ndarray]) -> list[np.ndarray]:
    """Every whole 32×32 block of the pictures (what the REC codec codes alone)."""
    out = []
    for picture in pictures:
        rows, cols = picture.shape[0] // BLOCK, picture.shape[1] // BLOCK
        grid = picture[:rows * BLOCK, :cols * BLOCK].reshape(rows, BLOCK, cols, BLOCK, 3)
        out.extend(grid.transpose(0, 2, 1, 3, 4).reshape(-1, BLOCK, BLOCK, 3))
    return out


def latent_bits_per_dim(model: CausalLatentVAE, blocks: list[np.ndarray]) -> float:
    """−ELBO bits/dim of 32×32 blocks (one seeded sample of z each)."""
    total = 0.0
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    with torch.no_grad():
        for start in range(0, len(blocks), 256):
            total += float(model.neg_elbo_bits(torch.from_numpy(np.stack(
                blocks[start:start + 256]))))
    torch.random.set_rng_state(generator_state)
    return total / (len(blocks) * BLOCK * BLOCK * 3)


def train_latent(settings: CausalSettings, out_dir: Path, log=print) -> Path:
    """Train the REC codec's latent causal model into `out_dir/checkpoint.pt`
    (`jobs/export_rec.py` makes the model file, with its REC tables)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / "checkpoint.pt"
    torch.manual_seed(settings.seed)
    if settings.init_from:
        start = with_neighbours(zoo.load_causal(settings.init_from).float_model,
                                settings.neighbours)
        model = CausalLatentVAE(replace(start.config,
                                        latent_channels=settings.latent_channels))
        model.pixels = with_latent(start, settings.latent_channels, seed=settings.seed)
    else:
        model = CausalLatentVAE(CausalConfig(width=settings.width or DEFAULT_WIDTH,
                                             mixtures=settings.mixtures,
                                             neighbours=settings.neighbours,
                                             latent_channels=settings.latent_channels))
    model.train()
    ema = copy.deepcopy(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    resumed = loop.load_checkpoint(checkpoint, model, ema, optimizer)
    train_pictures, val_pictures = load_pictures(settings.dataset, settings.validation_images)
    val_blocks = val_pictures if settings.dataset == "cifar10" else \
        photo_blocks(val_pictures)[::8]
    steps = [resumed["step"] if resumed else 0]

    def batch_loss(chosen: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        crops = random_crops(train_pictures, chosen, BLOCK, rng)
        beta = min(1.0, steps[0] / max(settings.kl_warmup_steps, 1))
        steps[0] += 1
        return model.neg_elbo_bits(crops, beta, settings.free_bits) / crops.numel()

    return loop.run(settings, model=model, ema=ema, optimizer=optimizer, checkpoint=checkpoint,
                    train_images=np.arange(len(train_pictures)), batch_loss=batch_loss,
                    validate=lambda net: latent_bits_per_dim(net, val_blocks),
                    keep={"config": model.config.to_json(), "settings": asdict(settings)},
                    resumed=resumed, clip_norm=100.0, log=log)
