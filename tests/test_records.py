"""The typed records agree with the forms they are stored in: Parquet schemas, JSON."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow as pa

from recarchive.archives.format import (
    INDEX_SCHEMA,
    INDEX_SCHEMA_UNITS,
    INDEX_SCHEMA_V1,
    SHARD_SCHEMA,
    canonical_json,
)
from recarchive.archives.records import (
    IndexRow,
    Manifest,
    PartRecord,
    PartStats,
    ShardRow,
    index_rows,
    rows_to_table,
)


def test_fields_are_the_schemas_columns() -> None:
    assert sorted(f.name for f in dataclasses.fields(IndexRow)) == sorted(
        INDEX_SCHEMA_UNITS.names)
    assert INDEX_SCHEMA_UNITS.names[:len(INDEX_SCHEMA.names)] == INDEX_SCHEMA.names
    assert [f.name for f in dataclasses.fields(ShardRow)] == SHARD_SCHEMA.names


def test_rows_round_trip_through_their_table() -> None:
    rows = [IndexRow("a/b.png", 10, "raster", 0, format="PNG", mode="RGB", height=2, width=3,
                     channels=3, shard=0, num_blocks=1, sha256_prefix=b"12345678",
                     recipe=b"r"),
            IndexRow("c", 5, "blob", 0, shard=1, blob_length=5, sha256_prefix=b"abcdefgh",
                     reason="not an image"),
            IndexRow("d", 0, "skipped", 0, reason="unreadable")]
    table = rows_to_table(rows)
    assert table.schema == INDEX_SCHEMA
    assert index_rows(table) == rows
    assert [row.dims for row in rows] == [18, 5, 0]
    assert [row.is_whole_raster for row in rows] == [False, False, False]
    # format 4: the same rows with the unit columns, one object located in two shards
    rows[0].unit_offsets, rows[0].unit_lengths = [100, 5000], [40, 12]
    rows[0].unit_sha256 = b"87654321"
    table = rows_to_table(rows, INDEX_SCHEMA_UNITS)
    assert table.schema == INDEX_SCHEMA_UNITS and index_rows(table) == rows
    assert [row.has_units for row in rows] == [True, False, False]


def test_a_format_1_index_reads_without_recipes() -> None:
    table = pa.Table.from_pylist([{"key": "x", "size": 1, "kind": "blob", "part": 0}],
                                 schema=INDEX_SCHEMA_V1)
    (row,) = index_rows(table)
    assert row.recipe is None and row.key == "x" and row.kind == "blob"


def test_a_done_record_keeps_its_stored_form() -> None:
    """Read and written back, a done record is the same JSON (observers' findings included);
    the pinned format-1 record reads too."""
    stored = json.loads((Path(__file__).parent / "data" / "archive_v1" / "archive" / "runs"
                         / "pinned-v1" / "done" / "part-000000.json").read_text())
    record = PartRecord.from_json(stored)
    assert record.writer == "" and "report" in record.observed
    assert record.file("index")["role"] == "index" and not record.uses_model
    fresh = dict(stored, writer="0badc0de",
                 stats=dataclasses.asdict(PartStats.from_json(stored["stats"])))
    assert json.loads(PartRecord.from_json(fresh).to_json()) == fresh
    assert PartRecord.from_json(fresh).to_json() == canonical_json(fresh)
    # counts a newer release added are left out; ones an older release lacked are 0
    newer = dict(fresh, stats=dict(fresh["stats"], counted_later=3))
    assert PartRecord.from_json(newer).stats == PartStats.from_json(fresh["stats"])
    assert PartRecord.from_json(fresh).stats.model_shards == 0


def test_a_manifest_keeps_its_stored_form() -> None:
    """The pinned format-1 manifest reads (no fidelity, no auto decision) and is the same JSON
    written back, its checksum included; keys a later release adds are kept."""
    stored = json.loads((Path(__file__).parent / "data" / "archive_v1" / "archive"
                         / "manifest.json").read_text())
    manifest = Manifest.from_json(stored)
    assert manifest.fidelity is None and manifest.auto_model is None
    assert manifest.parts[0].data.endswith(".parquet") and manifest.stats.objects > 0
    assert manifest.as_dict() == stored
    later = dict(stored, added_later={"x": 1})
    assert Manifest.from_json(later).as_dict() == later
