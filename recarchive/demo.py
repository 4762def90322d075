"""`make demo`: archive a small real bucket, restore it, check every object, print a summary.

The bucket is a local folder holding two CC0 photos from scikit-image (one also as a JPEG),
the first CIFAR-10 test images as PNG files, and generated edge cases: every raster mode and
format the archive keeps as pixels, and what it must keep as bytes (JPEG, lossy WebP, 16-bit
PNG, zero-byte, non-image, corrupt and bomb PNGs). It is archived with the default codec
(`auto`), its model kept in a shared model store as a team archiving many buckets would keep
it, and the summary sets what the rasters took beside PNG, WebP and JPEG-XL lossless files of
the same pixels. Runs in process, no Ray.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import struct
import sys
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

FIXTURE_FILES = {
    "photos/skimage_chelsea_CC0.png": "skimage_chelsea_CC0.png",
    "photos/skimage_coffee_CC0.png": "skimage_coffee_CC0.png",
}
DEMO_CIFAR = 200  # CIFAR-10 test images: enough for the model's chains to pay off


def _encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG whose header claims width x height 8-bit gray pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\0" * 64)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data)
            + png_chunk(b"IEND", b""))


def edge_cases(seed: int = 0) -> dict[str, bytes]:
    """Generated objects (key -> bytes) covering what ingest must tell apart."""
    rng = np.random.default_rng(seed)
    smooth = np.add.outer(np.arange(33), np.arange(45)).astype(np.uint8)
    rgb = np.stack([smooth, smooth[::-1], rng.integers(0, 256, smooth.shape, np.uint8)], -1)
    rgb = rgb.astype(np.uint8)
    alpha = np.linspace(0, 255, 45, dtype=np.uint8)[None, :].repeat(33, 0)
    palette = Image.fromarray(rng.integers(0, 6, (40, 50), np.uint8), "P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 250, 250, 0, 9, 9, 9])
    gray16 = Image.fromarray((np.arange(30 * 40).reshape(30, 40) * 53 % 65536).astype(np.uint16))
    text = PngImagePlugin.PngInfo()
    text.add_text("Title", "recarchive demo")
    text.add_itxt("Comment", "exact pixels \u2713")
    exif = Image.Exif()
    exif[0x010F] = "recarchive"  # Make
    photo = Image.fromarray(rgb, "RGB")
    valid = _encode(photo, "PNG")
    return {
        "edge/odd_45x33.png": valid,
        "edge/gray.png": _encode(Image.fromarray(smooth, "L"), "PNG"),
        "edge/rgba.png": _encode(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "PNG"),
        "edge/palette.png": _encode(palette, "PNG", transparency=0),
        "edge/nested/deeper/gray_alpha.png": _encode(
            Image.fromarray(np.dstack([smooth, alpha]), "LA"), "PNG"),
        "edge/metadata.png": _encode(photo, "PNG", pnginfo=text, exif=exif.tobytes(),
                                     icc_profile=b"demo-icc-profile-bytes"),
        "edge/image.bmp": _encode(photo, "BMP"),
        "edge/image.tiff": _encode(photo, "TIFF"),
        "edge/image.ppm": _encode(photo, "PPM"),
        "edge/lossless.webp": _encode(photo, "WEBP", lossless=True),
        "edge/lossy.webp": _encode(photo, "WEBP", quality=70),
        "edge/photo.jpg": _encode(photo, "JPEG", quality=90),
        "edge/gray16.png": _encode(gray16, "PNG"),
        "edge/empty.bin": b"",
        "edge/readme.txt": b"not an image: kept byte for byte\n",
        "edge/corrupt.png": valid[: len(valid) * 2 // 3],
        "edge/bomb.png": bomb_png(),
    }


DANGLING = "edge/dangling-link"


def cifar_objects(count: int) -> dict[str, bytes]:
    """The first `count` CIFAR-10 test images as PNG files."""
    from recarchive.datasets import load_cifar10

    return {f"cifar10/test_{number:05d}.png": _encode(Image.fromarray(image), "PNG")
            for number, image in enumerate(load_cifar10("test")[:count])}


def make_bucket(folder: Path, fixtures: Path | None = None,
                cifar: int = DEMO_CIFAR) -> dict[str, bytes]:
    """Write the demo bucket into `folder`; return key -> original bytes.

    Also adds `edge/dangling-link`, a symlink to nothing: listed like any object but unreadable,
    so the archive must record it as skipped with the reason (it is not in the returned dict).
    """
    if fixtures is None:
        from recarchive.datasets import data_dir

        fixtures = data_dir() / "fixtures"
    objects = {key: (fixtures / name).read_bytes() for key, name in FIXTURE_FILES.items()}
    with Image.open(fixtures / FIXTURE_FILES["photos/skimage_chelsea_CC0.png"]) as photo:
        objects["photos/skimage_chelsea_CC0_q90.jpg"] = _encode(photo.convert("RGB"), "JPEG",
                                                                 quality=90)
    objects.update(cifar_objects(cifar))
    objects.update(edge_cases())
    for key, data in objects.items():
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    with contextlib.suppress(OSError, NotImplementedError):
        (folder / DANGLING).symlink_to(folder / "edge" / "no-such-target")
    return objects


def same_raster(original: bytes, restored: bytes) -> bool:
    """Same mode, pixels and palette, decoded from the original and the restored bytes."""
    with Image.open(io.BytesIO(original)) as a, Image.open(io.BytesIO(restored)) as b:
        if a.mode != b.mode or not np.array_equal(np.asarray(a), np.asarray(b)):
            return False
        if a.mode == "P":
            used = len(a.getpalette() or [])
            return (a.getpalette() or [])[:used] == (b.getpalette() or [])[:used]
        return True


def run_demo(workdir: str | None = None, codec: str = "auto",
             say: Callable[[str], None] = print, codec_options: dict[str, Any] | None = None,
             show_report: bool = False, cifar: int = DEMO_CIFAR) -> dict[str, Any]:
    """Archive, restore, check, verify; return the summary (also printed through `say`), and
    with `show_report` print the archive's compression report before the folders go."""
    from recarchive.api import archive
    from recarchive.archives import ArchiveSettings, list_objects, restore, verify

    temp = tempfile.mkdtemp(prefix="recarchive-demo-", dir=workdir)
    try:
        root = Path(temp)
        bucket, target, restored = root / "bucket", root / "archive", root / "restored"
        store = root / "model-store"
        objects = make_bucket(bucket, cifar=cifar)
        settings = ArchiveSettings(codec=codec, codec_options=dict(codec_options or {}))
        manifest = archive(str(bucket), str(target), settings, model_store=str(store))
        report = restore(str(target), str(restored))
        checked = verify(str(target))
        rows = {row["key"]: row for row in list_objects(str(target))}
        mismatched = []
        for key, data in objects.items():
            path = restored / key
            row = rows.get(key)
            if row is None or not path.is_file():
                mismatched.append(key)
            elif row["kind"] == "raster":
                if not same_raster(data, path.read_bytes()):
                    mismatched.append(key)
            elif path.read_bytes() != data:
                mismatched.append(key)
        for key, row in rows.items():
            if key not in objects and (row["kind"] != "skipped" or not row["reason"]):
                mismatched.append(key)  # only unreadable objects may be missing, with a reason
        archive_bytes = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        store_bytes = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
        totals = manifest["totals"]
        summary = {
            "objects": totals["objects"], "kinds": dict(Counter(r["kind"] for r in rows.values())),
            "source_bytes": totals["source_bytes"], "archive_bytes": archive_bytes,
            "model_store_bytes": store_bytes, "auto_model": manifest.get("auto_model"),
            "codec": manifest["codec"], "raw_pixel_bytes": totals["raw_pixel_bytes"],
            "codec_payload_bytes": totals["pixel_payload_bytes"],
            "codec_bits_per_dim": 8.0 * totals["pixel_payload_bytes"] / totals["raw_pixel_bytes"],
            "rasters_as": raster_baselines(objects, rows),
            "model_rasters": totals.get("auto_model_rasters", 0),
            "model_bytes": totals.get("auto_model_bytes", 0),
            "model_jpegxl_bytes": totals.get("auto_model_jpegxl_bytes", 0),
            "jpegs": totals["jpegs"], "jpeg_bytes": totals["jpeg_raw_bytes"],
            "jpeg_payload_bytes": totals["jpeg_payload_bytes"],
            "blob_bytes": totals["blob_raw_bytes"], "blob_zstd_bytes": totals["blob_payload_bytes"],
            "kept_as_bytes": {k: r["reason"] for k, r in sorted(rows.items())
                              if r["kind"] == "blob"},
            "skipped": {k: r["reason"] for k, r in sorted(rows.items())
                        if r["kind"] == "skipped"},
            "restored": report.objects - len(report.skipped),
            "identical": not mismatched, "mismatched": mismatched,
            "verify_problems": checked.problems,
        }
        if show_report:
            from recarchive.commands.report import report_command

            report_command(str(target))
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    say(format_summary(summary))
    return summary


def raster_baselines(objects: dict[str, bytes], rows: dict[str, dict[str, Any]]) -> dict:
    """What the archived rasters' pixels take as their own PNG, WebP lossless and JPEG-XL
    lossless files (JPEG-XL at the effort `--codec jpegxl` uses: what a user gets from cjxl's
    default)."""
    from recarchive.archives import jpegxl
    from recarchive.archives.ingest import ingest
    from recarchive.report.classical import coded_bytes

    sizes = {"png": 0, "webp": 0, "jpegxl": 0}
    for key, data in objects.items():
        if rows.get(key, {}).get("kind") != "raster":
            continue
        pixels = ingest(data).pixels
        assert pixels is not None
        for name, count in coded_bytes(pixels, ("png", "webp")).items():
            sizes[name] += count
        stream = jpegxl.compress(pixels)
        sizes["jpegxl"] += len(stream) if isinstance(stream, bytes) else pixels.size
    return sizes


def _below(ours: int, theirs: int) -> str:
    """'4.1 % below' / '0.3 % above' (ours against theirs)."""
    if not theirs:
        return "n/a"
    change = 100.0 * (theirs - ours) / theirs
    return f"{abs(change):.1f} % {'below' if change >= 0 else 'above'}"


def format_summary(s: dict[str, Any]) -> str:
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(s["kinds"].items()))
    ours, base = s["codec_payload_bytes"], s["rasters_as"]
    lines = [
        f"objects: {s['objects']} ({kinds})",
        f"source: {s['source_bytes']:,} bytes; archive: {s['archive_bytes']:,} bytes "
        f"({100.0 * s['archive_bytes'] / s['source_bytes']:.1f} % of source)",
        f"rasters: {s['raw_pixel_bytes']:,} bytes of pixels -> {ours:,} bytes by codec "
        f"{s['codec']} ({s['codec_bits_per_dim']:.3f} bits/dim)",
        "  against the same pixels as their own files: "
        + ", ".join(f"{_below(ours, base[name])} {label} ({base[name]:,} bytes)"
                    for name, label in (("png", "PNG"), ("webp", "WebP lossless"),
                                        ("jpegxl", "JPEG-XL lossless")))]
    if s["model_rasters"]:
        lines.append(f"  {s['model_rasters']} rasters coded by the model: {s['model_bytes']:,} "
                     f"bytes, {_below(s['model_bytes'], s['model_jpegxl_bytes'])} their "
                     f"JPEG-XL streams ({s['model_jpegxl_bytes']:,} bytes); the rest as JPEG-XL")
    decision = s.get("auto_model")
    if decision:
        where = ("kept once in the shared model store beside the archive"
                 if decision["kept"] else "not kept: it did not earn its copy")
        lines.append(f"  model {decision['model_sha256'][:12]}: {where} "
                     f"({s['model_store_bytes']:,} bytes, shared by every archive that names it)")
    if s["jpegs"]:
        lines.append(f"JPEGs: {s['jpegs']} files, {s['jpeg_bytes']:,} -> "
                     f"{s['jpeg_payload_bytes']:,} bytes recompressed losslessly "
                     f"({_below(s['jpeg_payload_bytes'], s['jpeg_bytes'])} the originals)")
    lines.append(f"kept as bytes (zstd): {s['blob_bytes']:,} -> {s['blob_zstd_bytes']:,} bytes "
                 "(JPEGs included)")
    lines += [f"  {key}: {reason}" for key, reason in s["kept_as_bytes"].items()]
    lines.append(f"skipped (recorded, not restorable): {len(s['skipped'])}")
    lines += [f"  {key}: {reason}" for key, reason in s["skipped"].items()]
    lines.append(f"restored {s['restored']} objects; every object pixel/byte-identical: "
                 f"{'yes' if s['identical'] else 'NO: ' + ', '.join(s['mismatched'])}")
    lines.append("verify: " + ("ok" if not s["verify_problems"]
                               else f"{len(s['verify_problems'])} problems"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recarchive.demo", description=__doc__)
    parser.add_argument("--workdir", default=None, help="where the temporary folders go")
    parser.add_argument("--codec", default="auto",
                        help="the archive's codec (default auto, the archive default)")
    parser.add_argument("--model", default=None,
                        help="model for codecs that need one (bitswap: default bitswap-photo)")
    parser.add_argument("--cifar", type=int, default=DEMO_CIFAR,
                        help=f"CIFAR-10 test images in the bucket (default {DEMO_CIFAR})")
    args = parser.parse_args(argv)
    options: dict[str, Any] = {}
    if args.model:
        options = {"model": args.model}
    elif args.codec == "bitswap":
        options = {"model": "bitswap-photo"}
    elif args.codec == "rec":
        options = {"model": "rec-cifar"}
    summary = run_demo(args.workdir, args.codec, codec_options=options, show_report=True,
                       cifar=args.cifar)
    ok = summary["identical"] and not summary["verify_problems"]
    if not ok:
        print("demo: FAILED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
