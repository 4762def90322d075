"""`--codec auto`, the default: each raster goes to the model where it fits and costs less than
its JPEG-XL stream, else to JPEG-XL; the model is kept only where it earns its copy, else the
parts that used it are rebuilt without it. Every object comes back byte for byte either way."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from recarchive import cli
from recarchive.api import archive
from recarchive.archives import ArchiveSettings, restore, verify
from recarchive.archives.format import MANIFEST, sha256_hex
from recarchive.archives.parts import AUTO_MAX_SIDE, fits_model
from recarchive.archives.repair import repair
from recarchive.archives.writer import (
    ArchiveCodecs,
    PartPlan,
    archive_codecs,
    build_part,
    finished_part,
    start_run,
)
from recarchive.codecs import get_codec
from recarchive.commands.report import report_command
from recarchive.datasets import data_dir, load_cifar10
from recarchive.report.load import load_report
from recarchive.storage import open_location

SETTINGS = ArchiveSettings(part_objects=64)
CIFAR = 40  # images: a few chains' worth, so that the model wins most of them


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def write_bucket(folder: Path) -> dict[str, bytes]:
    """CIFAR-10 test images (the model's kind), a photo (too large for it), a gray and an
    RGBA thumbnail (layouts it does not code), a JPEG (the lossless JPEG path)."""
    images = load_cifar10("test")[:CIFAR]
    objects = {f"cifar/{i:03d}.png": png(image) for i, image in enumerate(images)}
    objects["photos/chelsea.png"] = (data_dir() / "fixtures" / "skimage_chelsea_CC0.png"
                                     ).read_bytes()
    objects["other/gray.png"] = png(images[0].mean(axis=2).astype(np.uint8))
    objects["other/rgba.png"] = png(np.dstack([images[1], images[2][:, :, 0]]))
    jpeg = io.BytesIO()
    Image.fromarray(images[3]).save(jpeg, "JPEG", quality=90)
    objects["other/photo.jpg"] = jpeg.getvalue()
    for key, data in objects.items():
        (folder / key).parent.mkdir(parents=True, exist_ok=True)
        (folder / key).write_bytes(data)
    return objects


@pytest.fixture(scope="module")
def bucket(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path_factory.mktemp("auto") / "src"
    return root, write_bucket(root)


@pytest.fixture(scope="module")
def shared(bucket, tmp_path_factory) -> dict[str, Any]:
    """An auto archive with a shared model store (the model is kept) and a jpegxl one."""
    root = tmp_path_factory.mktemp("auto-archives")
    store = root / "models"
    kept = archive(str(bucket[0]), str(root / "auto"), SETTINGS, model_store=str(store))
    whole = archive(str(bucket[0]), str(root / "jxl"),
                    ArchiveSettings(codec="jpegxl", shard_blocks=16, part_objects=64))
    return {"root": root, "store": store, "auto": kept, "jpegxl": whole}


def restored_exactly(archive_dir: Path, out: Path, objects: dict[str, bytes]) -> None:
    report = restore(str(archive_dir), str(out))
    assert not report.failed and report.byte_exact == len(objects)
    for key, data in objects.items():
        assert hashlib.sha256((out / key).read_bytes()).digest() == \
            hashlib.sha256(data).digest(), key


def test_auto_is_the_default_of_settings_and_cli() -> None:
    assert ArchiveSettings().codec == "auto"
    args = cli.build_parser().parse_args(["archive", "a", "b"])
    assert args.codec == "auto"


def test_candidates_are_rgb_rasters_the_model_fits() -> None:
    model = archive_codecs(ArchiveSettings()).model
    assert model is not None and model.name == "bitswap"
    side = AUTO_MAX_SIDE
    assert fits_model(np.zeros((32, 32, 3), np.uint8), model)
    assert fits_model(np.zeros((side, 7, 3), np.uint8), model)
    assert not fits_model(np.zeros((side + 1, 32, 3), np.uint8), model)
    assert not fits_model(np.zeros((32, 32, 1), np.uint8), model)
    assert not fits_model(np.zeros((32, 32, 4), np.uint8), model)


def test_each_raster_goes_where_it_is_smaller_and_comes_back_exactly(
        shared, bucket, tmp_path) -> None:
    manifest, totals = shared["auto"], shared["auto"]["totals"]
    assert manifest["codec"] == "auto" and manifest["auto_model"]["kept"]
    # every RGB thumbnail was measured; most went to the model, the rest to JPEG-XL
    assert totals["auto_candidates"] == CIFAR
    assert CIFAR // 2 <= totals["auto_model_rasters"] < totals["auto_candidates"] + 1
    assert totals["model_shards"] >= 1
    # the photo, gray and RGBA rasters were not candidates: JPEG-XL; the JPEG took its own path
    assert totals["whole_rasters"] == totals["rasters"] - totals["auto_model_rasters"]
    assert totals["jpegs"] == 1
    # what the model's rasters cost: below their JPEG-XL streams, as the record says
    assert totals["auto_model_bytes"] < totals["auto_model_jpegxl_bytes"]
    assert manifest["auto_model"]["saved_bytes"] == (
        totals["auto_model_jpegxl_bytes"] - totals["auto_model_bytes"])
    # (the shards written are coded again without the rest: costs move, and near ties end
    # above their stream; counted, never hidden)
    assert 0 <= totals["auto_model_above_jpegxl"] < totals["auto_model_rasters"]
    # so the archive's pixel payload is below the JPEG-XL archive's of the same rasters
    assert totals["pixel_payload_bytes"] < shared["jpegxl"]["totals"]["pixel_payload_bytes"]
    restored_exactly(shared["root"] / "auto", tmp_path / "out", bucket[1])
    assert not verify(str(shared["root"] / "auto")).problems


def test_the_report_shows_what_went_to_each_codec(shared) -> None:
    report = load_report(str(shared["root"] / "auto"))
    totals = shared["auto"]["totals"]
    objects = {}
    for row in report["codecs"]:
        objects[row["codec"]] = objects.get(row["codec"], 0) + row["objects"]
    assert objects["bitswap"] == totals["auto_model_rasters"]
    assert objects["jpegxl-lossless"] == totals["whole_rasters"]
    assert objects["jpeg-lossless"] == 1


def test_a_model_that_does_not_earn_its_copy_is_dropped(bucket, tmp_path) -> None:
    """Without a shared store the 5 MB model copy outweighs what 40 thumbnails save: the part
    is rebuilt without it, the archive holds no model and no superseded file."""
    target = tmp_path / "a"
    assert cli.main(["archive", str(bucket[0]), str(target)]) == 0
    manifest = json.loads((target / MANIFEST).read_bytes())
    decision = manifest["auto_model"]
    assert not decision["kept"] and decision["parts_rebuilt"] == 1
    assert 0 < decision["saved_bytes"] < decision["copy_bytes"] == 4_204_760
    assert manifest["models"] == [] and manifest["totals"]["model_shards"] == 0
    assert manifest["totals"]["whole_rasters"] == manifest["totals"]["rasters"]
    named = {f["path"] for f in manifest["files"]} | {MANIFEST}
    on_disk = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
    assert {p for p in on_disk if "/commits/" not in p} <= named
    assert not any("/models/" in p for p in on_disk)
    restored_exactly(target, tmp_path / "out", bucket[1])
    # a rebuilt manifest names no model either
    (target / MANIFEST).unlink()
    assert repair(str(target)).action == "restored-commit-copy"
    (target / MANIFEST).unlink()
    for copy in target.rglob("commits/*.json"):
        copy.unlink()
    repair(str(target))
    assert json.loads((target / MANIFEST).read_bytes())["models"] == []


def test_a_resumed_run_prefers_the_build_without_the_model(bucket, tmp_path) -> None:
    """A part built with the model and again without it (the decision was made, the commit
    not): a rerun takes the build without it."""
    destination = open_location(str(tmp_path / "a"))
    run_id, codecs = start_run(destination, str(bucket[0]), SETTINGS, None)
    items = sorted(open_location(str(bucket[0])).list_files(), key=lambda item: item.key)
    plan = PartPlan(0, tuple(items))
    source = open_location(str(bucket[0]))
    with_model = build_part(source, destination, run_id, plan, codecs, SETTINGS).record
    assert with_model.uses_model
    plain = ArchiveCodecs(codecs.blocks)
    # a build without the model does not take the one that used it
    without = build_part(source, destination, run_id, plan, plain, SETTINGS)
    assert not without.reused and without.record.stats.model_shards == 0
    for wanted in (codecs, plain):
        assert finished_part(destination, run_id, plan, wanted).writer == \
            without.record.writer
    # a plain codec's run never takes a record whose shards need a model
    assert finished_part(destination, run_id, plan,
                         ArchiveCodecs(get_codec("order0"))) is not None


def test_the_model_store_copy_is_the_shipped_model(shared) -> None:
    models = shared["auto"]["models"]
    assert len(models) == 1 and "store" in models[0] and models[0]["codec"] == "bitswap"
    data = (shared["store"] / models[0]["path"]).read_bytes()
    assert sha256_hex(data) == models[0]["sha256"] == shared["auto"]["auto_model"]["model_sha256"]


def test_the_report_says_what_auto_chose_in_json_terminal_and_html(shared, tmp_path) -> None:
    report = load_report(str(shared["root"] / "auto"))
    auto, totals = report["archive"]["auto"], shared["auto"]["totals"]
    assert auto["kept"] and auto["model_rasters"] == totals["auto_model_rasters"]
    assert auto["model_bytes"] == totals["auto_model_bytes"]
    assert 0 < auto["saved_pct"] < 20 and auto["jpegxl_rasters"] == totals["whole_rasters"]
    html = tmp_path / "r.html"
    assert cli.main(["report", str(shared["root"] / "auto"), "--html", str(html)]) == 0
    line = f"auto: {auto['model_rasters']:,} of {auto['candidates']:,} candidate rasters"
    assert line in html.read_text()
    out = io.StringIO()
    report_command(str(shared["root"] / "auto"), out=out)
    assert line in out.getvalue()
    assert "auto" not in load_report(str(shared["root"] / "jxl"))["archive"]


def test_a_bucket_without_candidates_says_so(tmp_path, capsys) -> None:
    (tmp_path / "src").mkdir()
    photo = data_dir() / "fixtures" / "skimage_chelsea_CC0.png"
    (tmp_path / "src" / "photo.png").write_bytes(photo.read_bytes())
    assert cli.main(["archive", str(tmp_path / "src"), str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert ("auto: 1 raster as JPEG-XL lossless; the model was not kept: no raster was one it "
            "takes (RGB, at most 64×64)") in out
    manifest = json.loads((tmp_path / "a" / MANIFEST).read_bytes())
    assert manifest["models"] == [] and manifest["auto_model"]["parts_rebuilt"] == 0
