"""Which PNG encoders' files `archive.containers` rebuilds byte for byte, and at what cost.

PNGs of ~20 images (the 4 CIFAR-10 fixtures, crops of the two skimage photos as RGB, gray and
palette, and 10 validation photos) are written by each encoder; each file is split into pixels
+ recipe (`split_container`, which checks the rebuild) and the study prints JSON: per encoder
the files, how many were rebuilt exactly, the share, the mean split time and the mean recipe
size, with the reasons for the files declined.

    .venv/bin/python studies/png_encoders.py                 # the study (a few minutes)
    .venv/bin/python studies/png_encoders.py --fixtures tests/data/png_encoders

The second form rewrites the small test fixtures (tests/test_containers.py) with the same
encoders. Encoders whose tool is missing are reported as skipped. External tools are forced to
write their own encoding (optipng -force, zopflipng --always_zopflify), so a file is never the
Pillow-written input passed through.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, features

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recarchive.archives.containers import (  # noqa: E402 - after the path fix-up
    NotRebuildable,
    describe_recipe,
    split_container,
)
from recarchive.datasets import data_dir  # noqa: E402

Encoder = Callable[[Path, Path], bytes]
PHOTOS = 10


def _pillow(**options: object) -> Encoder:
    def encode(source: Path, _work: Path) -> bytes:
        out = _work / "pillow.png"
        with Image.open(source) as image:
            image.save(out, "PNG", **options)
        return out.read_bytes()
    return encode


def _tool(*argv: str) -> Encoder:
    """An external encoder: argv with {in} and {out} placeholders."""
    def encode(source: Path, work: Path) -> bytes:
        out = work / "tool.png"
        out.unlink(missing_ok=True)
        command = [arg.format(src=source, out=out) for arg in argv]
        subprocess.run(command, check=True, capture_output=True, timeout=600)
        return out.read_bytes()
    return encode


def _oxipng(source: Path, _work: Path) -> bytes:
    import oxipng  # pyoxipng: optional

    return oxipng.optimize_from_memory(source.read_bytes(), level=2, force=True)


ENCODERS: dict[str, tuple[str | None, Encoder]] = {
    # name: (the executable or module it needs, encoder)
    "pillow-1": (None, _pillow(compress_level=1)),
    "pillow-6": (None, _pillow()),
    "pillow-9": (None, _pillow(compress_level=9)),
    "pillow-optimize": (None, _pillow(optimize=True)),
    "magick-default": ("convert", _tool("convert", "{src}", "{out}")),
    "magick-q95": ("convert", _tool("convert", "{src}", "-quality", "95", "{out}")),
    "magick-interlace": ("convert", _tool("convert", "{src}", "-interlace", "PNG", "{out}")),
    "optipng-default": ("optipng", _tool("optipng", "-quiet", "-force", "-out", "{out}",
                                         "{src}")),
    "optipng-o5": ("optipng", _tool("optipng", "-quiet", "-force", "-o5", "-out", "{out}",
                                    "{src}")),
    "pngcrush-default": ("pngcrush", _tool("pngcrush", "-q", "{src}", "{out}")),
    "pngcrush-brute": ("pngcrush", _tool("pngcrush", "-q", "-brute", "{src}", "{out}")),
    "zopflipng": ("zopflipng", _tool("zopflipng", "-y", "--always_zopflify", "{src}", "{out}")),
    "oxipng-2": ("oxipng", _oxipng),
}
FIXTURE_ENCODERS = ("magick-default", "magick-q95", "magick-interlace", "optipng-default",
                    "optipng-o5", "pngcrush-default", "pngcrush-brute", "zopflipng")


def _available(need: str | None) -> bool:
    if need is None:
        return True
    if need == "oxipng":
        try:
            import oxipng  # noqa: F401
        except ImportError:
            return False
        return True
    return shutil.which(need) is not None


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def study_images() -> dict[str, Image.Image]:
    """The ~20 images: CIFAR fixtures, skimage crops (RGB, L, P) and validation photos."""
    root = data_dir()
    images = {f"cifar{i:02d}": _rgb(root / "fixtures" / f"cifar10_test_{i:02d}.png")
              for i in range(4)}
    chelsea = _rgb(root / "fixtures" / "skimage_chelsea_CC0.png")
    coffee = _rgb(root / "fixtures" / "skimage_coffee_CC0.png")
    images["chelsea-64"] = chelsea.crop((150, 60, 214, 124))
    images["chelsea-128x96"] = chelsea.crop((100, 50, 228, 146))
    images["chelsea-200x150-L"] = chelsea.crop((200, 100, 400, 250)).convert("L")
    images["coffee-64-L"] = coffee.crop((250, 150, 314, 214)).convert("L")
    images["coffee-128x96-P"] = coffee.crop((200, 100, 328, 196)).quantize(64)
    images["coffee-200x150"] = coffee.crop((150, 100, 350, 250))
    listed = (root / "photos" / "VALIDATION.txt").read_text().split()
    for name in listed[:: max(1, len(listed) // PHOTOS)][:PHOTOS]:
        images[Path(name).stem[:40]] = _rgb(root / "photos" / name)
    return images


def fixture_images() -> dict[str, Image.Image]:
    """Four 40x32 crops of the chelsea photo: RGB, gray, 16-colour palette, RGBA."""
    crop = _rgb(data_dir() / "fixtures" / "skimage_chelsea_CC0.png").crop((170, 70, 210, 102))
    rgba = np.dstack([np.asarray(crop), np.linspace(0, 255, 40, dtype=np.uint8)[None]
                      .repeat(32, axis=0)])
    return {"rgb": crop, "gray": crop.convert("L"), "pal": crop.quantize(16),
            "rgba": Image.fromarray(rgba, "RGBA")}


def _source(image: Image.Image, work: Path) -> Path:
    """The encoders' input: a plain Pillow PNG without metadata chunks."""
    path = work / "source.png"
    plain = Image.frombytes(image.mode, image.size, image.tobytes())
    if image.mode == "P":
        plain.putpalette(image.getpalette())
    plain.save(path, "PNG")
    return path


def run_study() -> dict[str, object]:
    images = study_images()
    report: dict[str, object] = {
        "python_zlib": zlib.ZLIB_RUNTIME_VERSION, "pillow": PIL.__version__,
        "pillow_zlib_ng": features.version("zlib_ng") if "zlib_ng" in features.features
        else None, "images": len(images), "encoders": {}, "skipped": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, (need, encode) in ENCODERS.items():
            if not _available(need):
                report["skipped"].append(name)  # type: ignore[union-attr]
                continue
            report["encoders"][name] = _measure(encode, images, work)  # type: ignore[index]
            print(f"{name}: {report['encoders'][name]}", file=sys.stderr)  # type: ignore[index]
    return report


def _measure(encode: Encoder, images: dict[str, Image.Image], work: Path) -> dict[str, object]:
    seconds, recipes, declined = [], [], collections.Counter()
    rules: collections.Counter[str] = collections.Counter()
    for image in images.values():
        data = encode(_source(image, work), work)
        start = time.perf_counter()
        try:
            split = split_container(data)
        except NotRebuildable as error:
            declined[str(error)] += 1
        else:
            recipes.append(len(split.recipe))
            info = describe_recipe(split.recipe)
            deflate = info["deflate"]
            rules[f"{info['filters']} / " + ("stored" if "stored" in deflate else
                                             "zlib {level}/{mem_level}/{strategy}".format(
                                                 **deflate))] += 1
        seconds.append(time.perf_counter() - start)
    return {"files": len(images), "rebuilt": len(recipes),
            "share": round(len(recipes) / len(images), 3),
            "mean_split_s": round(float(np.mean(seconds)), 4),
            "mean_recipe_bytes": round(float(np.mean(recipes)), 1) if recipes else None,
            "max_recipe_bytes": max(recipes) if recipes else None,
            "declined": dict(declined), "rules": dict(rules)}


def write_fixtures(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in FIXTURE_ENCODERS:
            need, encode = ENCODERS[name]
            if not _available(need):
                print(f"skipped {name}: {need} not found", file=sys.stderr)
                continue
            for kind, image in fixture_images().items():
                (folder / f"{name}_{kind}.png").write_bytes(encode(_source(image, work), work))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", type=Path, help="write the test fixtures here instead")
    args = parser.parse_args()
    if args.fixtures:
        write_fixtures(args.fixtures)
    else:
        print(json.dumps(run_study(), indent=2))


if __name__ == "__main__":
    main()
