"""Train the REC codec's MNIST VAE: `python jobs/train_mnist_vae.py --out runs/mnist-vae`.

The same code as `recarchive train vae --dataset mnist`; resumes from the checkpoint in --out;
`--export recarchive/models/zoo/rec-mnist.safetensors` writes the shipped model file.
"""

from __future__ import annotations

import sys

from recarchive.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["train", "vae", "--dataset", "mnist", *sys.argv[1:]]))
