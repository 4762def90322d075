"""Training the REC codec's VAE: MNIST digits (`rec-mnist`) or CIFAR-10 blocks (`rec-cifar`).

Checkpoints every `checkpoint_every` steps and at the end; a rerun with the same output folder
resumes. Validation −ELBO in bits/dim is logged on the held-back split (the last 5,000 MNIST
training digits, CIFAR-10 train 45,000-49,999), never on the test set, for the raw and the
Polyak-averaged weights (the averaged ones ship). `export` turns a checkpoint into the shipped
model file: float and exact nets plus the REC tables fitted on training images.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from recarchive.models.vae import VAE, VAEConfig, flat_pixels
from recarchive.training.polyak import polyak_update

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
    """Train (or resume) into `out_dir`; returns the checkpoint path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / "checkpoint.pt"
    torch.manual_seed(settings.seed)
    model = VAE(settings.config)
    ema = copy.deepcopy(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    step, history = 0, []
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        step, history = state["step"], state["history"]
        log(f"resumed from step {step}")
    train_images, val_images = load_training_data(settings.dataset)
    val_images = val_images[: settings.validation_images]
    rng = np.random.default_rng(settings.seed + step)
    started = time.monotonic()

    def save() -> None:
        state = {"model": model.state_dict(), "ema": ema.state_dict(),
                 "optimizer": optimizer.state_dict(), "step": step, "history": history,
                 "config": settings.config.to_dict(), "dataset": settings.dataset}
        tmp = checkpoint.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(checkpoint)

    while step < settings.steps:
        lr = settings.learning_rate * min(1.0, (step + 1) / settings.warmup_steps)
        lr *= 0.5 * (1 + math.cos(math.pi * step / settings.steps)) * 0.9 + 0.1
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = train_images[rng.integers(0, len(train_images), settings.batch_size)]
        if settings.dataset == "cifar10" and rng.random() < 0.5:
            batch = batch[:, :, ::-1]  # horizontal flips
        x = flat_pixels(batch).float()
        terms = model.elbo_terms(x)
        loss = (terms["recon"] + terms["kl"]).mean() / (x.shape[1] * math.log(2))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
        optimizer.step()
        polyak_update(ema, model, step, settings.ema_decay)
        step += 1
        if step % 100 == 0:
            log(f"step {step} loss {loss.item():.4f} bits/dim lr {lr:.2e} "
                f"({time.monotonic() - started:.0f}s)")
        out_of_time = (settings.max_minutes is not None
                       and time.monotonic() - started > 60 * settings.max_minutes)
        last = step == settings.steps or out_of_time
        if step % settings.validate_every == 0 or last:
            record = {"step": step,
                      "val_bits_per_dim": validation_bits_per_dim(model, val_images),
                      "val_bits_per_dim_ema": validation_bits_per_dim(ema, val_images)}
            history.append(record)
            log(json.dumps(record))
        if step % settings.checkpoint_every == 0 or last:
            save()
        if out_of_time:
            log(f"stopping at step {step}: time limit of {settings.max_minutes} minutes")
            break
    save()
    return checkpoint


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
    tables = fit_rec_tables(convert_to_exact(model), fit)
    history = state["history"]
    training = {"dataset": state["dataset"], "steps": state["step"],
                "validation": history[-1] if history else None, "rec_fit_images": fit_images}
    data = vae_model_bytes(model, tables, training)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_bytes(data)
    digest = zoo.sha256_of(data)
    log(f"wrote {out_file} ({len(data)} bytes), sha256 {digest}")
    return digest
