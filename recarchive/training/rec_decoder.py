"""Fine-tuning a REC model's pixel nets on the latents REC's encoder actually sends.

REC does not send a sample of the posterior: per latent block the encoder picks, among
candidates drawn from the prior, the one whose code is shortest (`codecs.rec.Shortest`).
Given those latents the pixels cost more than given z ~ q (on 128 CIFAR-10 validation images
with `rec-cifar`: 2.758 bits/dim against 2.541, at the posterior mean 2.274). Which candidate
wins depends only on the posterior, the prior and the REC tables, never on the pixel nets, so
those nets (p(x|z1), its checkerboard context net and the colour coefficients) can learn from
exactly the (image, chosen latent) pairs coding will give them, while the posterior nets and
the tables stay as they are: the exported model sends the same latents for the same images.

The loop is `training.loop`'s; its minibatches are drawn from the indices of the pairs.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from recarchive.codecs.rec import RecCodec
from recarchive.codecs.rec_models import ConvRecModel
from recarchive.models import zoo
from recarchive.training import loop
from recarchive.training.bitswap import load_training_data, to_tensor

CHOOSE_CHUNK = 250  # images whose latents are chosen together (each chunk its own seed)


@dataclass
class DecoderSettings:
    model: str = "rec-cifar-2026-12-06b"  # a convolutional REC model: name or file
    dataset: str = "cifar10"  # or "photo"
    images: int = 6000  # training images whose chosen latents are the training data
    steps: int = 2000
    batch_size: int = 32
    learning_rate: float = 3e-4
    warmup_steps: int = 100
    ema_decay: float = 0.999
    seed: int = 0
    checkpoint_every: int = 500
    validate_every: int = 500
    validation_images: int = 256
    max_minutes: float | None = None


def chosen_latents(codec: RecCodec, images: np.ndarray, seed: int,
                   log=print) -> torch.Tensor:
    """(N, C, 16, 16): the latents `codec` sends for `images`, as the float nets read them;
    chunk k uses seed `seed + k`, so the pairs come from many candidate lists, as archives'
    shards (and objects' blocks) draw theirs."""
    model = codec.model
    if not isinstance(model, ConvRecModel):
        raise ValueError(f"model {model.sha256[:12]} is not a convolutional REC model: only "
                         "those have pixel nets to fine-tune here")
    parts = []
    for k, start in enumerate(range(0, len(images), CHOOSE_CHUNK)):
        z24 = codec.chosen_latents(images[start : start + CHOOSE_CHUNK], seed + k)
        parts.append(model.latent_values(z24))
        log(f"chose latents for {start + len(z24)} of {len(images)} images")
    return torch.cat(parts)


def _pairs(path: Path, codec: RecCodec, images: np.ndarray, seed: int, log) -> torch.Tensor:
    """The chosen latents, computed once per run folder (a resumed run reuses them). Saved
    with what they were chosen for, and written to a temporary file first: a rerun with
    another model, image count or seed, or after a kill mid-write, must not train on them."""
    made_for = {"model_sha256": codec.model.sha256, "images": len(images), "seed": seed}
    if path.exists():
        saved = torch.load(path, weights_only=True)
        if saved.get("made_for") != made_for:
            raise ValueError(f"{path} holds latents chosen for {saved.get('made_for')}, not "
                             f"{made_for}: use a fresh --out folder for other settings")
        return saved["latents"]
    latents = chosen_latents(codec, images, seed, log)
    temporary = path.with_suffix(".tmp")
    torch.save({"latents": latents, "made_for": made_for}, temporary)
    temporary.replace(path)
    return latents


def pixel_bits_per_dim(model, images: np.ndarray, latents: torch.Tensor,
                       batch: int = 250) -> float:
    """Mean −log2 p(x|z) per subpixel of `images` given their chosen `latents`."""
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = to_tensor(images[start : start + batch], torch.device("cpu"))
            total += float(model.reconstruction_nats(x, latents[start : start + batch]).sum())
    return total / (images.size * math.log(2))


def train_decoder(settings: DecoderSettings, out_dir: Path, log=print) -> Path:
    """Fine-tune `settings.model`'s pixel nets on its own chosen latents, into
    `out_dir/checkpoint.pt` (which `jobs/export_rec.py` turns into a model file)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / "checkpoint.pt"
    codec = RecCodec(ConvRecModel(zoo.load_bitswap(settings.model)))
    torch.manual_seed(settings.seed)
    model = copy.deepcopy(codec.model.loaded.float_model).train()
    for parameter in model.infer.parameters():
        parameter.requires_grad_(False)  # the posterior decides the latents: it stays
    ema = copy.deepcopy(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=settings.learning_rate)
    resumed = loop.load_checkpoint(checkpoint, model, ema, optimizer)
    train_all, val_all = load_training_data(settings.dataset, settings.seed)
    rng = np.random.default_rng(settings.seed)
    images = train_all[np.sort(rng.choice(len(train_all), settings.images, replace=False))]
    val_images = val_all[-settings.validation_images:]
    latents = _pairs(out_dir / "chosen.pt", codec, images, 1000 * (settings.seed + 1), log)
    val_latents = _pairs(out_dir / "chosen-validation.pt", codec, val_images, 0, log)
    if resumed is None:
        log(f"before: validation pixels {pixel_bits_per_dim(model, val_images, val_latents):.4f}"
            " bits/dim given the chosen latents")

    def batch_loss(batch: np.ndarray, _rng: np.random.Generator) -> torch.Tensor:
        x = to_tensor(images[batch], torch.device("cpu"))
        nats = model.reconstruction_nats(x, latents[torch.from_numpy(batch)])
        return nats.mean() / (x[0].numel() * math.log(2))

    source = f"{settings.model} ({codec.model.sha256})"
    return loop.run(settings, model=model, ema=ema, optimizer=optimizer, checkpoint=checkpoint,
                    train_images=np.arange(len(images)), batch_loss=batch_loss,
                    validate=lambda net: pixel_bits_per_dim(net, val_images, val_latents),
                    keep={"config": model.config.to_dict(), "init_from": source,
                          "decoder_fine_tune": {"images": settings.images,
                                                "dataset": settings.dataset}},
                    resumed=resumed, clip_norm=200.0, log=log)

