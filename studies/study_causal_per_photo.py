"""Where the causal pixel model wins and loses against JPEG-XL, photo by photo.

For each validation photo whole: the causal model's float bits/dim (its exact log-likelihood
on the photo as one picture; coding adds padding and lane heads, about 0.3 %) and JPEG-XL
lossless at effort 9 on the same pixels, sorted by the model's margin.

    python studies/study_causal_per_photo.py causal-photo
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

from recarchive.datasets import photo_files
from recarchive.models import zoo
from recarchive.report.classical import jpegxl_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a shipped causal model name or a model file")
    args = parser.parse_args()
    model = zoo.load_causal(args.model).float_model
    rows = []
    for path in photo_files("validation"):
        with Image.open(path) as image:
            pixels = np.array(image.convert("RGB"))
        with torch.no_grad():
            bits = float(model.neg_log_likelihood_bits(torch.from_numpy(pixels)[None]))
        rows.append((path.name, bits / pixels.size, 8 * jpegxl_bytes(pixels) / pixels.size,
                     pixels.shape))
    rows.sort(key=lambda row: row[1] - row[2])
    for name, causal, jxl, shape in rows:
        print(f"{name:40s} {shape[1]:4d}x{shape[0]:<4d} causal {causal:.3f}  JPEG-XL {jxl:.3f}  "
              f"{100 * (causal / jxl - 1):+6.1f} %")
    dims = np.array([r[3][0] * r[3][1] * 3 for r in rows])
    causal_all = sum(r[1] * d for r, d in zip(rows, dims, strict=True)) / dims.sum()
    jxl_all = sum(r[2] * d for r, d in zip(rows, dims, strict=True)) / dims.sum()
    wins = sum(r[1] < r[2] for r in rows)
    print(f"all {len(rows)}: causal {causal_all:.4f}, JPEG-XL {jxl_all:.4f}; the model wins on "
          f"{wins}")


if __name__ == "__main__":
    main()
