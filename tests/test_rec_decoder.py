"""Fine-tuning a REC model's pixel nets on the latents its encoder sends
(`training.rec_decoder`): those latents are the ones the decoder reads, the fine-tune lowers
the pixels' cost given them, and the posterior (hence the REC tables and the latents sent)
stays as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recarchive.codecs import get_codec
from recarchive.codecs.rec import RecSettings, RecTables, fit_rec_tables
from recarchive.codecs.rec_models import ConvRecModel
from recarchive.datasets import cifar10_split
from recarchive.models import zoo
from recarchive.training.rec_decoder import DecoderSettings, chosen_latents, train_decoder
from tests.test_rec_conv import model_bytes, tiny_model


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("zoo") / "tiny-rec-conv.safetensors"
    path.write_bytes(model_bytes(tiny_model()))
    return path


def test_the_chosen_latents_are_those_the_decoder_reads(model_file):
    blocks = np.asarray(cifar10_split("validation")[:5])
    codec = get_codec("rec", model=str(model_file), seed=7)
    shard = codec.encode(blocks)
    read: list[torch.Tensor] = []
    head = codec.model.pixel_head
    codec.model.pixel_head = lambda z24: (read.append(z24), head(z24))[1]
    assert np.array_equal(codec.decode(shard), blocks)
    assert torch.equal(torch.cat(read), codec.chosen_latents(blocks))
    assert not torch.equal(codec.chosen_latents(blocks, seed=8), torch.cat(read))
    values = chosen_latents(codec, blocks, 7, log=lambda _: None)
    assert torch.equal(values, codec.model.latent_values(torch.cat(read)))


def test_the_fine_tune_lowers_the_pixels_cost_and_keeps_the_posterior(model_file, tmp_path):
    settings = DecoderSettings(model=str(model_file), images=96, steps=8, batch_size=16,
                               learning_rate=3e-3, warmup_steps=1, checkpoint_every=4,
                               validate_every=4, validation_images=32)
    lines: list[str] = []
    checkpoint = train_decoder(settings, tmp_path, log=lines.append)
    state = torch.load(checkpoint, weights_only=False)
    before = float(next(line for line in lines if line.startswith("before")).split()[3])
    after = state["history"][-1]["val_bits_per_dim_ema"]
    assert after < before - 0.01
    tuned = zoo.float_model_from_checkpoint(checkpoint)
    original = zoo.load_bitswap(str(model_file))
    for name, value in original.float_model.state_dict().items():
        if name.startswith("infer."):
            assert torch.equal(tuned.state_dict()[name], value), name
    # the exported file's tables, fitted as the original's were, are the original's
    bare = zoo.load_bitswap_bytes(zoo.bitswap_model_bytes(tuned), None, "tuned")
    adapter = ConvRecModel(bare)
    fit = np.asarray(cifar10_split("train")[:64])
    tables = fit_rec_tables(adapter.posterior, adapter.to_pixels(fit),
                            RecSettings("orc", True, 24.0, 128))
    assert RecTables.from_arrays(tables).sha256() == \
        RecTables.from_arrays(original.rec).sha256()
    # a rerun resumes from its checkpoint and its chosen latents
    train_decoder(DecoderSettings(**{**settings.__dict__, "steps": 10}), tmp_path,
                  log=lines.append)
    assert "resumed from step 8" in lines
    # but not onto latents chosen for other settings
    with pytest.raises(ValueError, match="fresh --out folder"):
        train_decoder(DecoderSettings(**{**settings.__dict__, "images": 64}), tmp_path,
                      log=lines.append)
