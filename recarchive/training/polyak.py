"""Polyak averaging of weights, shared by the training loops: the averaged weights are what
ships, since they give a lower validation −ELBO than the last step's."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def polyak_update(ema: nn.Module, model: nn.Module, step: int, decay: float) -> None:
    """Move `ema` toward `model`. The rate warms up as (1+t)/(10+t) so that the average is not
    dominated by the random initialization in the first steps."""
    rate = min(decay, (1 + step) / (10 + step))
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.lerp_(p, 1 - rate)
