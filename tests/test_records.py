"""The typed records agree with the Parquet schemas they are stored under."""

from __future__ import annotations

import dataclasses

import pyarrow as pa

from recarchive.archives.format import INDEX_SCHEMA, INDEX_SCHEMA_V1, SHARD_SCHEMA
from recarchive.archives.records import IndexRow, ShardRow, index_rows, rows_to_table


def test_fields_are_the_schemas_columns() -> None:
    assert sorted(f.name for f in dataclasses.fields(IndexRow)) == sorted(INDEX_SCHEMA.names)
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


def test_a_format_1_index_reads_without_recipes() -> None:
    table = pa.Table.from_pylist([{"key": "x", "size": 1, "kind": "blob", "part": 0}],
                                 schema=INDEX_SCHEMA_V1)
    (row,) = index_rows(table)
    assert row.recipe is None and row.key == "x" and row.kind == "blob"
