"""What the head-only studies of p(x|z1) share: a frozen model, z1 drawn from its posterior,
validation images (never the test split) and the fine-tuning loop.

Used by `study_channel_dependence.py` and `study_spatial_context.py`; run those, not this.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch

from recarchive import datasets
from recarchive.models import zoo
from recarchive.models.bitswap import BitSwapModel, pixels_to_input, space_to_depth

BATCH = 64
LEARNING_RATE = 5e-4


def frozen_model(name: str) -> BitSwapModel:
    model = zoo.load_bitswap(name).float_model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def sample_z1(model: BitSwapModel, x: torch.Tensor) -> torch.Tensor:
    """z1 ~ q(z1|x), reparameterized logistic, no gradient (the encoder stays frozen)."""
    with torch.no_grad():
        mean, log_scale = model.infer[0](space_to_depth(pixels_to_input(x)))
        u = torch.rand_like(mean).clamp(1e-6, 1 - 1e-6)
        return mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))


def to_pixels(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float()


DATASETS = ("cifar10", "photo")


def validation(model: BitSwapModel, images: int,
               dataset: str = "cifar10") -> tuple[torch.Tensor, torch.Tensor]:
    """The first `images` CIFAR-10 validation images (or seeded 32×32 patches of the photo
    validation files) and one fixed draw of their z1."""
    if dataset == "photo":
        x_val = to_pixels(datasets.random_patches(datasets.photo_files("validation"), images, 1))
    else:
        x_val = to_pixels(datasets.cifar10_split("validation")[:images])
    torch.manual_seed(1)
    return x_val, sample_z1(model, x_val)


@functools.cache
def _training_images(dataset: str) -> np.ndarray:
    """Loaded once per run, however many variants a study fine-tunes."""
    if dataset == "photo":
        return datasets.random_patches(datasets.photo_files("train"), 50_000, 0)
    return datasets.cifar10_split("train")


def fine_tune(model: BitSwapModel, params: list[torch.nn.Parameter], steps: int,
              loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
              dataset: str = "cifar10") -> None:
    """`steps` of Adamax on `params` over training batches of `dataset`; `loss_of(x, z1)`
    gives per-image bits/dim. Every study draws the same batches (seeded)."""
    train = _training_images(dataset)
    optimizer = torch.optim.Adamax(params, lr=LEARNING_RATE)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        x = to_pixels(train[rng.integers(0, len(train), BATCH)])
        loss = loss_of(x, sample_z1(model, x)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
