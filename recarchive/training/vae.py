"""Training the REC codec's VAE: MNIST digits (`rec-mnist`) or CIFAR-10 blocks (`rec-cifar-mlp`).

The loop is `training.loop`'s (checkpoints, resume, Polyak weights, validation −ELBO on the
held-back split: the last 5,000 MNIST training digits, CIFAR-10 train 45,000-49,999, never the
test set); this module gives it the VAE's data and loss. `export` turns a checkpoint into the
shipped model file: float and exact nets plus the REC tables fitted on training images.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from recarchive.models.vae import VAE, VAEConfig, flat_pixels
from recarchive.training import loop

DATASETS = ("mnist", "cifar10")


@dataclass
class TrainSettings:
    dataset: str = "mnist"
    steps: int = 10_000
    batch_size: int = 128
    learning_rate: float = 1e-3
    warmup_steps: int = 200
    ema_decay: float = 0.998
    seed: int = 0
    checkpoint_every: int = 1000
    validate_every: int = 1000
    validation_images: int = 5000
    max_minutes: float | None = None
    config: VAEConfig = field(default_factory=VAEConfig)


def load_training_data(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) uint8 images (N, H, W, C)."""
    from recarchive import datasets

    if dataset == "mnist":
        return (datasets.load_mnist_images("train")[..., None],
                datasets.load_mnist_images("validation")[..., None])
    if dataset == "cifar10":
        return datasets.cifar10_split("train"), datasets.cifar10_split("validation")
    raise ValueError(f"unknown training dataset {dataset!r}: use one of {DATASETS}")


def config_for(dataset: str, latent_dims: int, hidden: int, layers: int) -> VAEConfig:
    shape = (1, 28, 28) if dataset == "mnist" else (3, 32, 32)
    return VAEConfig(*shape, latent_dims=latent_dims, hidden=hidden, layers=layers)


@torch.no_grad()
def validation_bits_per_dim(model: VAE, images: np.ndarray, batch: int = 500) -> float:
    """Mean −ELBO (bits/dim) with a fixed sampling seed, so runs compare like for like."""
    torch.manual_seed(1234)
    total = 0.0
    for start in range(0, len(images), batch):
        total += float(model.bits_per_dim(flat_pixels(images[start : start + batch])).sum())
    return total / len(images)


def train(settings: TrainSettings, out_dir: Path, log: Callable[[str], None] = print) -> Path:
    """Train (or resume) into `out_dir`; returns the checkpoint path (`training.loop`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / "checkpoint.pt"
    torch.manual_seed(settings.seed)
    model = VAE(settings.config)
    ema = copy.deepcopy(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    resumed = loop.load_checkpoint(checkpoint, model, ema, optimizer)
    train_images, val_images = load_training_data(settings.dataset)
    val_images = val_images[: settings.validation_images]

    def batch_loss(batch: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        if settings.dataset == "cifar10" and rng.random() < 0.5:
            batch = batch[:, :, ::-1]  # horizontal flips
        x = flat_pixels(batch).float()
        terms = model.elbo_terms(x)
        return (terms["recon"] + terms["kl"]).mean() / (x.shape[1] * math.log(2))

    return loop.run(settings, model=model, ema=ema, optimizer=optimizer, checkpoint=checkpoint,
                    train_images=train_images, batch_loss=batch_loss,
                    validate=lambda net: validation_bits_per_dim(net, val_images),
                    keep={"config": settings.config.to_dict(), "dataset": settings.dataset},
                    resumed=resumed, clip_norm=100.0, log=log)


def model_from_checkpoint(path: Path, use_ema: bool = True) -> tuple[VAE, dict]:
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = VAE(VAEConfig(**state["config"]))
    model.load_state_dict(state["ema" if use_ema else "model"])
    return model.eval(), state


def export(checkpoint: Path, out_file: Path, fit_images: int = 2000,
           log: Callable[[str], None] = print) -> str:
    """Write the shipped model file (float + exact nets + REC tables); returns its sha256.

    REC tables come from training images only (`codecs.rec.fit_rec_tables`).
    """
    from recarchive.codecs.rec import fit_rec_tables
    from recarchive.models import zoo
    from recarchive.models.vae import convert_to_exact, vae_model_bytes

    model, state = model_from_checkpoint(checkpoint)
    train_images, _ = load_training_data(state["dataset"])
    rng = np.random.default_rng(0)
    fit = train_images[np.sort(rng.choice(len(train_images), fit_images, replace=False))]
    exact = convert_to_exact(model)
    tables = fit_rec_tables(lambda pixels: exact.posterior(torch.from_numpy(pixels)),
                            flat_pixels(fit).numpy())
    history = state["history"]
    training = {"dataset": state["dataset"], "steps": state["step"],
                "validation": history[-1] if history else None, "rec_fit_images": fit_images}
    data = vae_model_bytes(model, tables, training)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_bytes(data)
    digest = zoo.sha256_of(data)
    log(f"wrote {out_file} ({len(data)} bytes), sha256 {digest}")
    return digest
