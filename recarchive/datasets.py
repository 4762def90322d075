"""The project's data sets, read in place from `../shared/data` (or `$RECARCHIVE_DATA`).

Splits are fixed here once so that every choice is made on validation data: CIFAR-10 train
images 45,000-49,999 and the last 5,000 MNIST training digits are validation; test splits only
report.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

CIFAR_TILE = 32
CIFAR_VALIDATION_START = 45_000


def data_dir() -> Path:
    """`$RECARCHIVE_DATA`, else `shared/data` beside the checkout."""
    env = os.environ.get("RECARCHIVE_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        raise FileNotFoundError(
            f"data folder {path} not found: set RECARCHIVE_DATA to the folder that holds "
            "cifar10/, mnist/ and photos/"
        )
    return path


def _decode_mosaic(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        mosaic = np.asarray(image.convert("RGB"))
    rows, cols = mosaic.shape[0] // CIFAR_TILE, mosaic.shape[1] // CIFAR_TILE
    tiles = mosaic.reshape(rows, CIFAR_TILE, cols, CIFAR_TILE, 3).transpose(0, 2, 1, 3, 4)
    return tiles.reshape(rows * cols, CIFAR_TILE, CIFAR_TILE, 3)


@lru_cache(maxsize=2)
def load_cifar10(split: str, verify: bool = True) -> np.ndarray:
    """All images of `split` ('train' or 'test') as uint8 NHWC, checked against checksums.json."""
    if split not in ("train", "test"):
        raise ValueError(f"CIFAR-10 split must be 'train' or 'test', got {split!r}")
    folder = data_dir() / "cifar10"
    files = sorted(folder.glob(f"{split}_*.webp"), key=lambda p: int(p.stem.split("_")[1]))
    images = np.concatenate([_decode_mosaic(f) for f in files])
    meta = json.loads((folder / "checksums.json").read_text())[split]
    images = images[: meta["n"]]
    if verify and hashlib.sha256(images.tobytes()).hexdigest() != meta["sha256_uint8_NHWC"]:
        raise ValueError(f"CIFAR-10 {split} pixels do not match {folder / 'checksums.json'}")
    images.setflags(write=False)
    return images


def cifar10_split(name: str) -> np.ndarray:
    """'train' (0-44,999), 'validation' (45,000-49,999) or 'test'."""
    if name == "test":
        return load_cifar10("test")
    train = load_cifar10("train")
    if name == "train":
        return train[:CIFAR_VALIDATION_START]
    if name == "validation":
        return train[CIFAR_VALIDATION_START:]
    raise ValueError(f"unknown CIFAR-10 split {name!r}: use train, validation or test")


def load_mnist_images(split: str) -> np.ndarray:
    """MNIST digits as uint8 (N, 28, 28): 'train', 'validation' (last 5,000) or 'test'."""
    name = "t10k" if split == "test" else "train"
    with gzip.open(data_dir() / "mnist" / f"{name}-images-idx3-ubyte.gz") as handle:
        raw = handle.read()
    count = int.from_bytes(raw[4:8], "big")
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(count, 28, 28)
    if split == "train":
        return images[:-5000]
    if split == "validation":
        return images[-5000:]
    return images


def photo_files(split: str) -> list[Path]:
    """Photo corpus files: 'train' or 'validation' (listed in photos/VALIDATION.txt)."""
    folder = data_dir() / "photos"
    lines = (folder / "VALIDATION.txt").read_text().splitlines()
    validation = {line.strip() for line in lines if line.strip()}
    every = sorted(p.relative_to(folder).as_posix() for p in folder.glob("*/*.png"))
    chosen = [f for f in every if (f in validation) == (split == "validation")]
    return [folder / f for f in chosen]


def random_patches(files: list[Path], count: int, seed: int, size: int = CIFAR_TILE) -> np.ndarray:
    """`count` random size×size RGB patches from `files`, seeded."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    per_file = -(-count // max(len(files), 1))
    patches = []
    for path in files:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        ys = rng.integers(0, pixels.shape[0] - size + 1, per_file)
        xs = rng.integers(0, pixels.shape[1] - size + 1, per_file)
        patches.extend(pixels[y : y + size, x : x + size] for y, x in zip(ys, xs, strict=True))
    order = rng.permutation(len(patches))[:count]
    return np.stack([patches[i] for i in order])
