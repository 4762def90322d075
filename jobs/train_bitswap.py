"""Train a Bit-Swap model: `python jobs/train_bitswap.py --dataset cifar10 --out runs/cifar`.

The same code as `recarchive train bitswap`; resumes from the checkpoint in --out.
"""

from __future__ import annotations

import sys

from recarchive.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["train", "bitswap", *sys.argv[1:]]))
