"""Compression reports: what an archive saved, how fast, and against what.

- `measure`: recorded while a part is built (per-shard coding time and payload, per-image bits,
  a small sample measured with classical codecs), kept in the part's done record under
  `"report"`; per-image bits follow `measure.BITS_METHOD`.
- `build`: merges the part records and the manifest into one report dict (the JSON rendering,
  schema in `schema.json`), and two reports into a side-by-side comparison.
- `embed`: writes the report (compact JSON) into every archive when it is committed.
- `restored`: `report --baselines N`, classical codecs on rasters restored from the archive.
- `terminal` (rich), `html` (one self-contained page with inline SVG plots): renderings.

This package is imported by the archive writer, so this file imports nothing: the archive
package must not be pulled in half-initialised.
"""
