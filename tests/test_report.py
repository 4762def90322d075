"""Compression reports on small real archives (order0, local folders): the report written into
the archive at commit, `recarchive report` (terminal, JSON against its schema, HTML, restored
baselines, two archives side by side), and that the figures add up to the archive's own."""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from PIL import Image

from recarchive import cli
from recarchive.api import archive
from recarchive.archives import ArchiveError, ArchiveSettings, open_archive, verify
from recarchive.archives.records import PartRecord, index_rows
from recarchive.archives.writer import ArchiveCodecs, finalize
from recarchive.codecs import costs, get_codec
from recarchive.datasets import data_dir
from recarchive.report import measure
from recarchive.report.build import build_report, compare
from recarchive.report.classical import png_bytes
from recarchive.report.embed import embedded_report, report_files
from recarchive.report.load import compute_report, load_report
from recarchive.report.terminal import print_comparison, print_report
from recarchive.storage import open_location
from tests.test_archive_helpers import demo_objects

SCHEMA = json.loads((Path(measure.__file__).parent / "schema.json").read_text())
SMALL = ArchiveSettings(codec="order0", shard_blocks=16, part_objects=9,
                        blob_shard_bytes=64)


def validate(document: dict[str, Any]) -> None:
    jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)


def write_bucket(folder: Path) -> dict[str, bytes]:
    """The demo's CIFAR-10 fixtures and edge cases, plus one raster at the bucket's root."""
    objects = demo_objects(with_photos=False)
    noise = np.random.default_rng(1).integers(0, 256, (40, 70, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG")
    objects["top.png"] = buffer.getvalue()
    for key, data in objects.items():
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return objects


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("report")
    objects = write_bucket(root / "bucket")
    manifest = archive(str(root / "bucket"), str(root / "a"), SMALL)
    other = archive(str(root / "bucket"), str(root / "b"),
                    ArchiveSettings(codec="order0", shard_blocks=1024, part_objects=4096))
    return {"root": root, "objects": objects, "a": root / "a", "b": root / "b",
            "manifest": manifest, "manifest_b": other}


@pytest.fixture(scope="module")
def report(built) -> dict[str, Any]:
    found = embedded_report(open_archive(str(built["a"])))
    assert found is not None
    return found


def test_report_is_written_into_the_archive_and_named_in_the_manifest(built, report, tmp_path):
    manifest = built["manifest"]
    files = report_files(manifest["files"])
    assert set(files) == {"json"}  # the page is drawn from it on demand, not stored
    for path in files.values():
        entry = next(f for f in manifest["files"] if f["path"] == path)
        assert entry["role"] == "report" and (built["a"] / path).stat().st_size == entry["size"]
    assert manifest["format_version"] == 2
    assert not verify(str(built["a"])).problems  # verify checks the report files too
    stored = (built["a"] / files["json"]).read_bytes()
    assert b"\n " not in stored  # compact: it is archive overhead
    assert set(json.loads(stored)["methods"]) == {"per_image_bits"}  # notes are constants
    assert set(report["methods"]) >= {"per_image_bits", "histogram", "baselines"}
    page = tmp_path / "page.html"
    assert cli.main(["report", str(built["a"]), "--html", str(page)]) == 0
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html and "<script" not in html and "<link" not in html
    validate(report)
    assert report["generated_by"] == "archive"


def test_datasets_add_up_to_the_archive(built, report):
    manifest, totals = built["manifest"], built["manifest"]["totals"]
    names = [d["name"] for d in report["datasets"]]
    assert names == ["bucket", "cifar10", "edge"]  # root keys named after the source folder
    by = {d["name"]: d for d in report["datasets"]}
    assert by["cifar10"]["codec"]["objects"] == 4 and by["cifar10"]["fallback"]["objects"] == 0
    assert by["bucket"]["codec"]["dims"] == 40 * 70 * 3
    assert (by["edge"]["codec"]["objects"], by["edge"]["fallback"]["objects"],
            by["edge"]["skipped"]) == (9, 8, 0)  # lossless WebP: its bytes (no recipe)
    t = report["totals"]
    for field in ("objects", "skipped", "source_bytes", "raw_bytes"):
        assert sum(d[field] for d in report["datasets"]) == t[field], field
    assert t["objects"] == totals["objects"] == len(built["objects"])
    assert t["codec"]["dims"] == totals["raw_pixel_bytes"]
    assert t["fallback"]["raw_bytes"] == totals["blob_raw_bytes"]
    assert t["codec"]["payload_bytes"] == totals["pixel_payload_bytes"]
    assert t["fallback"]["payload_bytes"] == totals["blob_payload_bytes"]
    archive_bytes = sum(f["size"] for f in manifest["files"] if f["role"] != "report")
    assert report["archive"]["archive_bytes"] == archive_bytes == t["archived_bytes"]
    assert abs(sum(d["archived_bytes"] for d in report["datasets"]) - archive_bytes) <= 3
    assert t["bits_per_dim"] == pytest.approx(8 * archive_bytes / t["raw_bytes"], abs=1e-4)
    assert t["codec"]["bits_per_dim"] == pytest.approx(
        8 * totals["pixel_payload_bytes"] / totals["raw_pixel_bytes"], abs=1e-4)
    assert t["seconds"] > 0 and t["throughput_mb_s"] > 0


def test_histograms_codecs_and_shards(built, report):
    manifest = built["manifest"]
    for d in [*report["datasets"], report["totals"]]:
        h = d["image_bits_per_dim"]
        assert sum(h["counts"]) + h["overflow"] == h["images"] == d["codec"]["objects"]
        assert h["min"] - 1e-3 <= h["mean"] <= h["max"] + 1e-3
    shards = report["shards"]
    assert shards["total"] == sum(p["shards"] for p in manifest["parts"]) == len(shards["listed"])
    assert [s["shard"] for s in shards["listed"]] == list(range(shards["total"]))
    reader = open_archive(str(built["a"]))
    for s in shards["listed"]:
        row = reader.read_shard(s["part"], s["row_group"])
        assert (row.kind, row.codec) == (s["kind"], s["codec"])
        assert len(row.payload) == s["payload_bytes"] and row.raw_size == s["raw_bytes"]
        assert s["seconds"] >= 0
    codecs = {c["codec"]: c for c in report["codecs"]}
    assert set(codecs) == {"order0", "zstd", "jpeg-lossless"}  # the JPEG recompressed
    assert codecs["order0"]["shards"] == manifest["totals"]["pixel_shards"]
    assert codecs["zstd"]["shards"] + codecs["jpeg-lossless"]["shards"] == (
        manifest["totals"]["blob_shards"])
    assert codecs["jpeg-lossless"]["objects"] == manifest["totals"]["jpegs"] == 1
    assert codecs["order0"]["payload_bytes"] == manifest["totals"]["pixel_payload_bytes"]


def test_per_block_bits_share_the_payload_and_follow_information():
    rng = np.random.default_rng(0)
    flat = np.full((1, 32, 32, 3), 7, np.uint8)
    busy = rng.integers(0, 256, (1, 32, 32, 3), np.uint8)
    bits = costs.block_bits(np.concatenate([flat, busy, flat]), 1000)
    assert bits.sum() == pytest.approx(8000)
    assert bits[1] > 10 * bits[0] and bits[0] == pytest.approx(bits[2])
    uniform = costs.block_bits(np.concatenate([flat, flat]), 10)
    assert uniform.tolist() == [40.0, 40.0]  # no information: shared by blocks


def test_archive_time_baselines_are_the_sampled_images(built, report):
    by = {d["name"]: d for d in report["datasets"]}
    sample = by["cifar10"]["baselines"]["archive"]
    assert sample["images"] == 4 and sample["dims"] == 4 * 32 * 32 * 3
    expected = sum(png_bytes(np.asarray(Image.open(io.BytesIO(built["objects"][k]))))
                   for k in sorted(built["objects"]) if k.startswith("cifar10/"))
    assert sample["bytes"]["png"] == expected
    assert sample["bits_per_dim"]["png"] == pytest.approx(8 * expected / sample["dims"], 1e-3)
    assert all(v is not None and v > 0 for v in sample["bits_per_dim"].values())
    assert sample["best"] in ("png", "webp", "jpegxl", "zstd")
    assert by["edge"]["baselines"]["archive"]["images"] >= 1  # gray, LA, palette included
    assert report["totals"]["baselines"]["archive"]["images"] == sum(
        d["baselines"]["archive"]["images"] for d in report["datasets"]
        if d["baselines"]["archive"])


def test_restored_baselines_match_the_archive_time_attribution(built, report):
    restored = load_report(str(built["a"]), baselines=100)
    validate(restored)
    for d in restored["datasets"]:
        sample = d["baselines"]["restored"]
        assert sample["images"] + sample["excluded"] == d["codec"]["objects"]
        if not sample["excluded"]:  # every raster restored: ours adds up to the codec payload
            assert sample["ours_bits"] == pytest.approx(8 * d["codec"]["payload_bytes"],
                                                        abs=8)
    few = load_report(str(built["a"]), baselines=1)
    assert all(d["baselines"]["restored"]["images"] == 1 for d in few["datasets"])


def test_report_computed_from_records_matches_the_embedded_one(built, report):
    computed = compute_report(open_archive(str(built["a"])))
    validate(computed)
    assert computed["generated_by"] == "report"
    for field in ("datasets", "totals", "codecs", "shards"):
        assert computed[field] == report[field], field


def test_parts_without_records_fall_back_to_index(built, report):
    reader = open_archive(str(built["a"]))
    computed = compute_report(reader)
    records = [PartRecord.from_json(json.loads((built["a"] / f["path"]).read_text()))
               for f in built["manifest"]["files"] if "/done/" in f["path"]]
    for record in records:
        record.observed.pop("report")
    old = build_report(reader.manifest, records, url=reader.url,
                       read_index=lambda r: index_rows(reader.index_table(reader.parts[r.part])))
    validate(old)
    assert old["archive"]["parts_without_measurements"] == len(records)
    assert old["archive"]["bits_method"] == "proportional-to-blocks"
    assert old["totals"]["codec"] == computed["totals"]["codec"]
    assert old["totals"]["archived_bytes"] == computed["totals"]["archived_bytes"]
    assert {c["codec"] for c in old["codecs"]} == {"order0", "zstd"}


def test_cli_json_terminal_and_html(built, report, capsys, tmp_path):
    assert cli.main(["report", str(built["a"]), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    validate(printed)
    assert printed["totals"] == report["totals"]
    page = tmp_path / "r.html"
    assert cli.main(["report", str(built["a"]), "--html", str(page)]) == 0
    text = capsys.readouterr().out
    for needle in ("cifar10", "edge", "bucket", "JPEG-XL", "per codec and model", "shards (",
                   f"{report['totals']['codec']['bits_per_dim']:.3f}"):
        assert needle in text, needle
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert cli.main(["report", str(built["root"] / "missing")]) == 1


def test_two_archives_side_by_side(built, capsys, tmp_path):
    page = tmp_path / "cmp.html"
    assert cli.main(["report", str(built["a"]), str(built["b"]), "--json",
                     "--html", str(page)]) == 0
    comparison = json.loads(capsys.readouterr().out)
    validate(comparison)
    names = [d["name"] for d in comparison["datasets"]]
    assert names == ["bucket", "cifar10", "edge", "all"]
    assert comparison["settings_differ"] == {"part_objects": [9, 4096],
                                             "shard_blocks": [16, 1024],
                                             "blob_shard_bytes": [64, 8 * 1024 * 1024]}
    cifar = next(d for d in comparison["datasets"] if d["name"] == "cifar10")
    bpd = next(m for m in cifar["metrics"] if m["metric"] == "codec bits/dim")
    assert bpd["a"] == comparison["a"]["datasets"][1]["codec"]["bits_per_dim"]
    assert bpd["b"] == comparison["b"]["datasets"][1]["codec"]["bits_per_dim"]
    assert bpd["change_pct"] == pytest.approx(100 * (bpd["b"] - bpd["a"]) / bpd["a"], abs=0.01)
    html = page.read_text()
    assert "side by side" in html and "B vs A" in html and html.count("<svg") >= 2
    out = io.StringIO()
    print_comparison(comparison, out)
    assert "A against B" in out.getvalue() and "codec bits/dim" in out.getvalue()


def test_single_dataset_archives_pair_whatever_their_folder_names(built, report):
    one = copy.deepcopy(report)
    two = copy.deepcopy(report)
    one["datasets"] = [dict(report["datasets"][1], name="cifar-a")]
    two["datasets"] = [dict(report["datasets"][1], name="cifar-b")]
    names = [d["name"] for d in compare(one, two)["datasets"]]
    assert names == ["cifar-a | cifar-b", "all"]


def test_terminal_report_lists_shards_with_a_limit(report):
    out = io.StringIO()
    print_report(report, out, shard_rows=2)
    assert f"… {report['shards']['total'] - 2:,} more" in out.getvalue()


def test_finalize_again_leaves_the_complete_archive_and_its_report_alone(built, tmp_path):
    source = built["root"] / "bucket"
    target = tmp_path / "once"
    manifest = archive(str(source), str(target), SMALL)
    before = {p: p.read_bytes() for p in target.rglob("report-*")}
    records = [PartRecord.from_json(json.loads((target / f["path"]).read_text()))
               for f in manifest["files"] if "/done/" in f["path"]]
    with pytest.raises(ArchiveError, match="another writer completed"):
        finalize(open_location(str(target)), manifest["run_id"], str(source), SMALL,
                 ArchiveCodecs(get_codec("order0")), records)
    assert {p: p.read_bytes() for p in target.rglob("report-*")} == before
    assert not verify(str(target)).problems


def test_a_report_that_cannot_be_built_only_warns(built, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("recarchive.report.embed.build_report", broken)
    with pytest.warns(UserWarning, match="compression report not written: RuntimeError: boom"):
        manifest = archive(str(built["root"] / "bucket" / "cifar10"), str(tmp_path / "w"))
    assert report_files(manifest["files"]) == {}
    assert not verify(str(tmp_path / "w")).problems
    computed = load_report(str(tmp_path / "w"))  # still reportable from its records
    assert computed["datasets"][0]["name"] == "cifar10"
    validate(computed)


def test_report_modules_do_not_import_ray():
    code = ("import sys\n"
            "import recarchive.report.load, recarchive.report.html, "
            "recarchive.report.terminal, recarchive.report.restored\n"
            "from recarchive import cli\n"
            "assert cli.main(['report', '--help']) == 0\n"
            "assert 'ray' not in sys.modules, 'ray imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_bitswap_against_order0_names_codec_and_model(built, tmp_path, capsys):
    """Bit-Swap (a tiny untrained model) against order0 on the same images: the per codec and
    model rows and the comparison tell them apart by codec and model hash."""
    import torch

    from recarchive.models import zoo
    from recarchive.models.bitswap import BitSwapConfig, BitSwapModel

    torch.manual_seed(0)
    tiny = BitSwapModel(BitSwapConfig(latent_layers=2, latent_channels=4, width=8,
                                      res_blocks=1)).eval()
    model = tmp_path / "tiny.safetensors"
    model.write_bytes(zoo.bitswap_model_bytes(tiny, {"note": "untrained test model"}))
    source = str(built["root"] / "bucket" / "cifar10")
    archive(source, str(tmp_path / "o"), ArchiveSettings(codec="order0"))
    manifest = archive(source, str(tmp_path / "s"),
                       ArchiveSettings(codec="bitswap", codec_options={"model": str(model)}))
    sha = manifest["models"][0]["sha256"]
    assert cli.main(["report", str(tmp_path / "o"), str(tmp_path / "s"), "--json"]) == 0
    comparison = json.loads(capsys.readouterr().out)
    validate(comparison)
    b = comparison["b"]
    assert b["archive"]["label"] == f"bitswap@{sha[:12]}" and b["archive"]["models"] == [sha]
    row = next(c for c in b["codecs"] if c["kind"] == "pixels")
    assert (row["codec"], row["model_sha256"], row["objects"]) == ("bitswap", sha, 4)
    assert b["archive"]["overhead"]["model_bytes"] == model.stat().st_size
    assert comparison["a"]["archive"]["label"] == "order0"
    assert [d["name"] for d in comparison["datasets"]] == ["cifar10", "all"]


def test_report_of_an_archive_in_object_storage(built, capsys):
    """Through fsspec like every archive read: here memory://, read back via the CLI."""
    target = "memory://report-test/archive"
    archive(str(built["root"] / "bucket" / "cifar10"), target)
    assert cli.main(["report", target, "--json", "--baselines", "2"]) == 0
    found = json.loads(capsys.readouterr().out)
    validate(found)
    assert found["archive"]["url"] == target and found["generated_by"] == "archive"
    assert found["datasets"][0]["baselines"]["restored"]["images"] == 2


def test_bitswap_images_get_the_bits_their_coder_measured(tmp_path):
    """Per-image bits of a Bit-Swap archive follow what the coder measured for each block
    (not the order-0 proxy): a flat image gets far fewer bits than photos; the shares still
    add up to the payload."""
    bucket = tmp_path / "bucket"
    for number in range(3):
        (bucket / "photos").mkdir(parents=True, exist_ok=True)
        (bucket / "photos" / f"{number}.png").write_bytes(
            (data_dir() / "fixtures" / f"cifar10_test_0{number}.png").read_bytes())
    (bucket / "flat").mkdir()
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(bucket / "flat" / "gray.png")
    manifest = archive(str(bucket), str(tmp_path / "a"),
                       ArchiveSettings(codec="bitswap", codec_options={"model": "bitswap-cifar"}))
    report = load_report(str(tmp_path / "a"))
    assert report["archive"]["bits_method"] == measure.BITS_METHOD == "codec-measured"
    by = {d["name"]: d for d in report["datasets"]}
    flat, photos = by["flat"]["codec"]["bits_per_dim"], by["photos"]["codec"]["bits_per_dim"]
    assert flat < photos / 3, (flat, photos)
    coded = sum(d["codec"]["payload_bytes"] for d in report["datasets"])
    assert coded == manifest["totals"]["pixel_payload_bytes"]
