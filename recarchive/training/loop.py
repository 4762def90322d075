"""The one training loop every model here trains with (Bit-Swap and the REC VAE).

Warm-up then a cosine learning rate down to a tenth, random minibatches of the training
images, gradient clipping, Polyak averaging (the averaged weights are what ships), a log line
every 100 steps, validation −ELBO of the raw and the averaged weights every `validate_every`
steps, a checkpoint every `checkpoint_every` steps and at the end (written to a temporary file,
then renamed), an optional time limit; a rerun with the same checkpoint resumes. What differs
between models (the loss of a batch, the validation, what else the checkpoint keeps) comes in
as functions and a dict.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from recarchive.training.polyak import polyak_update


class LoopSettings(Protocol):
    steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int
    ema_decay: float
    seed: int
    checkpoint_every: int
    validate_every: int
    max_minutes: float | None


def learning_rate(settings: LoopSettings, step: int) -> float:
    """Linear warm-up, then a cosine from the full rate down to a tenth of it."""
    rate = settings.learning_rate * min(1.0, (step + 1) / settings.warmup_steps)
    return rate * (0.5 * (1 + math.cos(math.pi * step / settings.steps)) * 0.9 + 0.1)


def load_checkpoint(path: Path, model: nn.Module, ema: nn.Module,
                    optimizer: torch.optim.Optimizer, device: torch.device | str = "cpu"
                    ) -> dict[str, Any] | None:
    """A checkpoint's state loaded into the three (None where there is none yet)."""
    if not path.exists():
        return None
    state = torch.load(path, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    ema.load_state_dict(state["ema"])
    optimizer.load_state_dict(state["optimizer"])
    return state


def run(settings: LoopSettings, *, model: nn.Module, ema: nn.Module,
        optimizer: torch.optim.Optimizer, checkpoint: Path, train_images: np.ndarray,
        batch_loss: Callable[[np.ndarray, np.random.Generator], torch.Tensor],
        validate: Callable[[nn.Module], float], keep: dict[str, Any],
        resumed: dict[str, Any] | None, clip_norm: float,
        log: Callable[[str], None] = print) -> Path:
    """Train from `resumed` (a loaded checkpoint's state, or None) to `settings.steps`.

    `batch_loss(images, rng)`: the loss (bits/dim) of a uint8 minibatch, augmentations its own;
    `validate(module)`: validation −ELBO in bits/dim; `keep`: what else each checkpoint holds.
    """
    step = resumed["step"] if resumed else 0
    history: list[dict[str, Any]] = resumed["history"] if resumed else []
    if resumed:
        log(f"resumed from step {step}")
    rng = np.random.default_rng(settings.seed + step)
    started = time.monotonic()

    def save() -> None:
        state = {"model": model.state_dict(), "ema": ema.state_dict(),
                 "optimizer": optimizer.state_dict(), "step": step, "history": history, **keep}
        temporary = checkpoint.with_suffix(".tmp")
        torch.save(state, temporary)
        temporary.replace(checkpoint)

    while step < settings.steps:
        rate = learning_rate(settings, step)
        for group in optimizer.param_groups:
            group["lr"] = rate
        batch = train_images[rng.integers(0, len(train_images), settings.batch_size)]
        loss = batch_loss(batch, rng)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        polyak_update(ema, model, step, settings.ema_decay)
        step += 1
        if step % 100 == 0:
            log(f"step {step} loss {loss.item():.4f} bits/dim lr {rate:.2e} "
                f"({time.monotonic() - started:.0f}s)")
        out_of_time = (settings.max_minutes is not None
                       and time.monotonic() - started > 60 * settings.max_minutes)
        last = step == settings.steps or out_of_time
        if step % settings.validate_every == 0 or last:
            record = {"step": step, "val_bits_per_dim": validate(model),
                      "val_bits_per_dim_ema": validate(ema)}
            history.append(record)
            log(json.dumps(record))
        if step % settings.checkpoint_every == 0 or last:
            save()
        if out_of_time:
            log(f"stopping at step {step}: time limit of {settings.max_minutes} minutes")
            break
    save()
    return checkpoint
