"""The REC VAE: the exact nets track the float ones, the latent input is integer-exact, and
training lowers validation −ELBO, checkpoints, resumes and exports a loadable model file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recarchive.datasets import data_dir
from recarchive.exact.normal import default_table
from recarchive.models.vae import (
    PIXEL_GRID,
    VAE,
    VAEConfig,
    convert_to_exact,
    flat_pixels,
    latent_fixed,
    load_vae,
)
from recarchive.training.vae import TrainSettings, export, train

TINY = VAEConfig(1, 28, 28, latent_dims=4, hidden=16, layers=1)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return np.load(data_dir() / "fixtures" / "mnist_test_first16_uint8.npy")[..., None]


def test_exact_nets_track_the_float_model(digits):
    torch.manual_seed(0)
    model = VAE(VAEConfig(1, 28, 28, latent_dims=8, hidden=64, layers=2)).eval()
    exact = convert_to_exact(model)
    x = flat_pixels(digits)
    with torch.no_grad():
        f_loc, f_log_scale = model.posterior(x.float())
        loc, scale = exact.posterior(x)
        assert np.abs(loc - f_loc.numpy()).max() < 1e-2
        assert np.abs(np.log(scale) - f_log_scale.numpy()).max() < 1e-2
        z = torch.randn(5, 8, dtype=torch.float64)
        f_mean, f_log = model.pixel_params(z.float())
        mean, index = exact.pixel_params(torch.floor(z * 4096).to(torch.int64))
    # Means in 1/16 pixel: within a few steps; scales: the nearest grid point or its neighbour.
    assert (mean.double() / 16 - f_mean.double()).abs().max() < 0.5
    grid_log = (index.double() + PIXEL_GRID.first) * PIXEL_GRID.step
    assert (grid_log - f_log.double()).abs().max() < 2 * PIXEL_GRID.step


def test_latent_input_is_floor_of_the_atom_value_in_integers_only():
    table = default_table()
    atoms = torch.arange(0, 1 << table.k, 97)
    fixed = latent_fixed(atoms).numpy()
    assert fixed.dtype == np.int64
    assert np.array_equal(fixed, np.floor(table.values[atoms.numpy()] * 4096).astype(np.int64))


def test_exact_outputs_do_not_depend_on_batching(digits):
    torch.manual_seed(1)
    exact = convert_to_exact(VAE(TINY))
    x = flat_pixels(digits)
    whole = exact.posterior(x)
    parts = [exact.posterior(x[i : i + 3]) for i in range(0, len(x), 3)]
    assert np.array_equal(whole[0], np.concatenate([p[0] for p in parts]))
    z = latent_fixed(torch.randint(0, 1 << 16, (16, 4)))
    full = exact.pixel_params(z)
    head, tail = exact.pixel_params(z[:7]), exact.pixel_params(z[7:])
    for k in range(2):
        assert torch.equal(torch.cat([head[k], tail[k]]), full[k])


def test_training_lowers_validation_elbo_resumes_and_exports(tmp_path):
    settings = TrainSettings(dataset="mnist", steps=60, batch_size=32, learning_rate=3e-3,
                             warmup_steps=5, validate_every=30, checkpoint_every=30,
                             validation_images=200, config=TINY)
    lines: list[str] = []
    checkpoint = train(settings, tmp_path / "run", log=lines.append)
    state = torch.load(checkpoint, weights_only=False)
    first, last = state["history"][0], state["history"][-1]
    assert state["step"] == 60
    assert last["val_bits_per_dim"] < first["val_bits_per_dim"]
    settings.steps = 70
    train(settings, tmp_path / "run", log=lines.append)
    assert "resumed from step 60" in lines
    assert torch.load(checkpoint, weights_only=False)["step"] == 70
    digest = export(checkpoint, tmp_path / "m.safetensors", fit_images=40, log=lines.append)
    loaded = load_vae(str(tmp_path / "m.safetensors"), digest)
    assert loaded.rec["cuts"][-1] == TINY.latent_dims
    assert loaded.metadata["family"] == "rec-vae"
