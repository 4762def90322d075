"""Archive a source into an archive: plan parts from the listing, build each part (or reuse it
from an interrupted run), then write the manifest last and exclusively.

The steps are separate functions so a scheduler can spread `build_part` over workers and call
`finalize` once: `plan_parts` -> `build_part` per part (idempotent, skips finished parts) ->
`finalize`.

Resume: a run is named by `run_id` (default: a hash of the source URL and settings, so the same
command resumes). Each build of a part gets a writer id of its own and writes its files under
it (`format.data_path(run, part, writer)`), ending with `runs/RUN/done/part-N-W.json`: the
fingerprint of the part's objects (keys, sizes, versions) and its files' sizes and sha256. A
rerun reuses a part whose fingerprint matches and whose files still hash to what the record
says, and builds any other anew under a new writer id; so two writers of one run never write
the same file, and the manifest (created exclusively) names the files of the one that
committed. The loser says which of its files no manifest names. Until the manifest exists,
readers refuse the archive as incomplete; rerunning a finished archive's command is a no-op.

Observers (`events`): each done record also carries what the part's observers measured, under
their names (the compression report's `"report"`: per-shard coding time and payload, per-image
bits, a small classical-codec sample), and `finalize` runs the commit hook just before the
manifest (the report's `runs/RUN/report-<sha256[:16]>.json`, named in the manifest with role
"report"). Both are wired in by the layer above (`recarchive.api`, the commands). Readers
ignore it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from recarchive.archives.errors import ArchiveError, IntegrityError
from recarchive.archives.events import (
    Advanced,
    CommitHook,
    Listener,
    ObserverFactory,
    PartEvent,
    ignore,
)
from recarchive.archives.format import (
    AUTO_CODEC,
    DEFAULT_OBJECT_DIGEST_BYTES,
    FIDELITIES,
    FIDELITY_EXACT,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    MODEL_STORE_VERSION,
    UNITS_VERSION,
    WHOLE_RASTER_CODECS,
    WHOLE_RASTER_VERSION,
    canonical_json,
    check_object_digest_bytes,
    commit_path,
    data_path,
    done_folder,
    done_path,
    index_path,
    model_path,
    parse_manifest,
    part_of_done_file,
    run_dir,
    seal_manifest,
    sha256_hex,
    store_model_path,
)
from recarchive.archives.ingest import DEFAULT_MAX_PIXELS
from recarchive.archives.models import model_bytes_of
from recarchive.archives.parts import PartBuilder
from recarchive.archives.records import Manifest, PartEntry, PartRecord, PartStats
from recarchive.codecs import BlockCodec, get_codec
from recarchive.storage import LocalKeyAudit, Location, StoredObject, open_location


@dataclass(frozen=True)
class ArchiveSettings:
    """Everything that shapes an archive's contents (and so names its default run)."""

    # "auto": per raster, Bit-Swap where its model fits and codes it smaller than JPEG-XL
    # lossless, else JPEG-XL (`codec_options` choose the model); "jpegxl": rasters whole as
    # JPEG-XL lossless (no model); a block codec ("bitswap", "rec", "order0") codes every
    # raster as 32×32 blocks
    codec: str = AUTO_CODEC
    codec_options: dict[str, Any] = field(default_factory=dict)
    shard_blocks: int = 1024
    part_objects: int = 4096
    part_bytes: int = 64 * 1024 * 1024
    blob_shard_bytes: int = 8 * 1024 * 1024
    zstd_level: int = 9
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_object_bytes: int = 4 * 1024**3  # objects are read whole; larger ones are skipped
    # bytes of each object's sha256 (of its original bytes) kept in the index: 8..32, 32 = the
    # full digest; pixels are covered by each shard's full raw_sha256 (see `format`)
    object_digest_bytes: int = DEFAULT_OBJECT_DIGEST_BYTES
    # "exact": every object restores to its original bytes; "pixels": rasters restore as
    # identical pixels and metadata in a re-encoded container (see `format`)
    fidelity: str = FIDELITY_EXACT
    # decode every coded pixel shard and compare it with its blocks before it is written
    verify_shards: bool = True

    def check(self) -> None:
        for name in ("shard_blocks", "part_objects", "part_bytes", "blob_shard_bytes",
                     "max_pixels", "max_object_bytes"):
            if getattr(self, name) < 1:
                raise ArchiveError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_object_digest_bytes(self.object_digest_bytes, "archive settings")
        if self.fidelity not in FIDELITIES:
            raise ArchiveError(f"fidelity {self.fidelity!r}: use one of {', '.join(FIDELITIES)}")


@dataclass(frozen=True)
class PartPlan:
    """A part: consecutive objects of the sorted listing, and their fingerprint (keys, sizes
    and listing version tags: a changed object makes its part be rebuilt on resume)."""

    number: int
    objects: tuple[StoredObject, ...]

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for item in self.objects:
            digest.update(f"{item.key}\0{item.size}\0{item.version}\n".encode())
        return digest.hexdigest()


def default_run_id(source_url: str, settings: ArchiveSettings) -> str:
    body = canonical_json({"source": source_url, "settings": asdict(settings)})
    return hashlib.sha256(body).hexdigest()[:16]


def plan_parts(objects: Iterable[StoredObject], settings: ArchiveSettings) -> Iterator[PartPlan]:
    """Cut the (streaming) listing into parts of at most `part_objects` objects and about
    `part_bytes` source bytes; only one part's listing is held at a time."""
    batch: list[StoredObject] = []
    size = 0
    number = 0
    for item in objects:
        if batch and (len(batch) >= settings.part_objects
                      or size + item.size > settings.part_bytes):
            yield PartPlan(number, tuple(batch))
            number += 1
            batch, size = [], 0
        batch.append(item)
        size += item.size
    if batch:
        yield PartPlan(number, tuple(batch))


def source_objects(source: Location, destination: Location,
                   audit: LocalKeyAudit | None = None) -> Iterator[StoredObject]:
    """The source listing, leaving out the archive itself when it lies inside the source;
    `audit` sees every key (which of them a local folder could not hold)."""
    inside = source.fs is destination.fs and (
        destination.root.startswith(source.root.rstrip("/") + "/"))
    prefix = destination.root[len(source.root.rstrip("/")) + 1:].strip("/") + "/"
    for item in source.list_files():
        if inside and (item.key + "/").startswith(prefix):
            continue
        if audit is not None:
            audit.see(item.key)
        yield item


def new_writer_id() -> str:
    """A fresh id for the files one build of a part (or one commit) writes."""
    return secrets.token_hex(4)


def completed_run(destination: Location, source_url: str, settings: ArchiveSettings,
                  run_id: str | None) -> dict[str, Any] | None:
    """The manifest, when this very run (same run id, source and settings) is already
    committed at `destination`: rerunning a finished command is then a no-op. None when no
    archive is committed there; an error when another run's archive is, or its manifest is
    damaged."""
    if not destination.exists(MANIFEST):
        return None
    run_id = run_id or default_run_id(source_url, settings)
    where = f"{destination.url}/{MANIFEST}"
    manifest = parse_manifest(destination.read_bytes(MANIFEST), where)
    if (manifest.get("run_id") == run_id and manifest.get("source") == source_url
            and manifest.get("settings") == json.loads(canonical_json(asdict(settings)))):
        return manifest
    raise ArchiveError(f"{destination.url}: an archive of another run ({manifest.get('run_id')}"
                       f", source {manifest.get('source')}) is already complete there "
                       f"({MANIFEST} exists); choose another destination")


AUTO_MODEL_CODEC = "bitswap"  # the neural codec `auto` measures candidates with


@dataclass(frozen=True)
class ArchiveCodecs:
    """The codecs of an archive's rasters. `blocks` codes those cut into blocks: every raster
    under a block codec; under a codec that codes rasters whole, the few JPEG-XL cannot hold
    exactly (order0). `model`: under `auto`, the neural codec candidates may go to."""

    blocks: BlockCodec
    model: BlockCodec | None = None

    @property
    def upfront_model(self) -> str | None:
        """The model every run needs (copied at its start); `auto`'s only when used."""
        return self.blocks.model_sha256

    @property
    def named_model(self) -> str | None:
        """The model the run records for `repair`: the one its shards may use."""
        return self.blocks.model_sha256 or (self.model.model_sha256 if self.model else None)


def archive_codecs(settings: ArchiveSettings) -> ArchiveCodecs:
    """The codecs an archive's settings call for."""
    if settings.codec == AUTO_CODEC:
        return ArchiveCodecs(get_codec("order0"),
                             get_codec(AUTO_MODEL_CODEC, **settings.codec_options))
    if settings.codec in WHOLE_RASTER_CODECS:
        return ArchiveCodecs(get_codec("order0"))
    return ArchiveCodecs(get_codec(settings.codec, **settings.codec_options))


def store_url(store: Location) -> str:
    """How a manifest names a model store: its URL, or the absolute path of a local folder
    (a relative one would mean another folder wherever the archive is read)."""
    return store.url if "://" in store.url else store.root


def start_run(destination: Location, source_url: str, settings: ArchiveSettings,
              run_id: str | None,
              model_store: Location | None = None) -> tuple[str, ArchiveCodecs]:
    """Check the destination, record the run's settings, and copy the codec's model in (or
    into `model_store`, shared by many archives, where it is kept once by its sha256); `auto`
    copies its model at the commit, and only if some shard used it."""
    settings.check()
    if destination.exists(MANIFEST):
        raise ArchiveError(f"{destination.url}: an archive is already complete there "
                           f"({MANIFEST} exists); choose another destination")
    run_id = run_id or default_run_id(source_url, settings)
    if not run_id.replace("-", "").replace("_", "").isalnum():
        raise ArchiveError(f"run id {run_id!r}: use letters, digits, '-' and '_' only")
    codecs = archive_codecs(settings)
    record = {"run_id": run_id, "source": source_url, "settings": asdict(settings),
              "model_sha256": codecs.named_model}  # what `repair` may name in a new manifest
    if model_store is not None:
        record["model_store"] = store_url(model_store)
    run_file = f"{run_dir(run_id)}/run.json"
    if destination.exists(run_file):
        earlier = json.loads(destination.read_bytes(run_file))
        if any(earlier.get(key) != record[key] for key in ("run_id", "source", "settings")):
            raise ArchiveError(
                f"{destination.url}: run {run_id!r} was started with other settings or source "
                f"({earlier}); rerun with the same ones to resume, or pass another --run-id")
        if earlier.get("model_store") != record.get("model_store"):
            raise ArchiveError(
                f"{destination.url}: run {run_id!r} was started with model store "
                f"{earlier.get('model_store')!r}, not {record.get('model_store')!r}; resume "
                "with the same one")
    else:
        destination.write_atomic(run_file, canonical_json(record))
    if codecs.upfront_model:
        copy_model(codecs.blocks, destination, run_id, model_store)
    return run_id, codecs


def copy_model(codec: BlockCodec, destination: Location, run_id: str,
               model_store: Location | None) -> None:
    """Put the codec's model file where the manifest will name it: the run's folder, or the
    shared store (once per sha256)."""
    model = model_bytes_of(codec)
    if model is None:
        return
    where = model_store or destination
    target = (store_model_path(codec.model_sha256 or "") if model_store is not None
              else model_path(run_id, codec.model_sha256 or ""))
    if not where.exists(target) or sha256_hex(where.read_bytes(target)) != codec.model_sha256:
        where.write_atomic(target, model)  # the same name is the same bytes, by its hash


@dataclass(frozen=True)
class ModelDecision:
    """Whether `auto` keeps its model: only where what the model's objects saved against their
    JPEG-XL streams outweighs the model's copy in the archive (nothing with a shared model
    store). Else the parts that used it are rebuilt without it (JPEG-XL only; the model's
    coding is lost time), so the default never makes an archive larger than JPEG-XL would,
    model included."""

    model_sha256: str
    saved_bytes: int   # the model's objects: their JPEG-XL streams minus their coded share
    copy_bytes: int    # the model's copy in this archive (0 with a shared store)
    rebuild: tuple[int, ...]  # parts that used the model, to rebuild when it is not kept

    @property
    def kept(self) -> bool:
        return self.saved_bytes > self.copy_bytes

    def describe(self) -> dict[str, Any]:
        """The manifest's record of it."""
        return {"model_sha256": self.model_sha256, "kept": self.kept,
                "saved_bytes": self.saved_bytes, "copy_bytes": self.copy_bytes,
                "parts_rebuilt": len(self.rebuild) if not self.kept else 0}


def decide_model(codecs: ArchiveCodecs, records: Sequence[PartRecord],
                 model_store: Location | None) -> ModelDecision | None:
    """`auto`'s decision on its model from its parts' records (None for other codecs)."""
    if codecs.model is None or codecs.model.model_sha256 is None:
        return None
    saved = sum(r.stats.auto_model_jpegxl_bytes - r.stats.auto_model_bytes for r in records)
    copy = 0 if model_store is not None else len(model_bytes_of(codecs.model) or b"")
    return ModelDecision(codecs.model.model_sha256, saved, copy,
                         tuple(r.part for r in records if r.uses_model))


def rebuild_plans(source: Location, destination: Location, settings: ArchiveSettings,
                  records: Sequence[PartRecord],
                  parts: Sequence[int]) -> Iterator[PartPlan]:
    """The plans of `parts` again (the listing is streamed, not kept), each checked against
    the fingerprint its part was built from."""
    wanted = {r.part: r.fingerprint for r in records if r.part in set(parts)}
    for plan in plan_parts(source_objects(source, destination), settings):
        if plan.number in wanted:
            if plan.fingerprint != wanted[plan.number]:
                raise ArchiveError(f"{source.url}: part {plan.number}'s objects changed while "
                                   "it was archived; rerun the command to archive them anew")
            yield plan


def discard_part(destination: Location, record: PartRecord) -> None:
    """Remove a superseded build of a part (its done record first, so that no resume trusts
    files that are going)."""
    for path in [record.done_path or ""] + [f["path"] for f in record.files]:
        if destination.exists(path):
            destination.remove(path)


def used_model(codecs: ArchiveCodecs, records: Sequence[PartRecord]) -> str | None:
    """The model the manifest names: the block codec's, or `auto`'s if a shard used it."""
    if codecs.upfront_model:
        return codecs.upfront_model
    if codecs.model is not None and any(r.uses_model for r in records):
        return codecs.model.model_sha256
    return None


def finished_part(destination: Location, run_id: str, plan: PartPlan,
                  codecs: ArchiveCodecs | None = None) -> PartRecord | None:
    """The done record of an earlier build of this part whose fingerprint matches and whose
    files all still hash to what it recorded (any writer's; None if there is none). A record
    whose shards use a model counts only where `codecs` has one; one without model shards is
    preferred (`auto` rebuilt the part without its model: see `ModelDecision`)."""
    folder = done_folder(run_id)
    allow_model = codecs is None or codecs.named_model is not None
    found = None
    for item in destination.list_files(folder):
        if part_of_done_file(item.key) != plan.number:
            continue
        path = f"{folder}/{item.key}"
        try:
            record = PartRecord.from_json(json.loads(destination.read_bytes(path)), path)
        except (ValueError, OSError, KeyError, TypeError, AttributeError):
            continue
        if record.fingerprint != plan.fingerprint or record.part != plan.number:
            continue
        if (record.uses_model and not allow_model) or (found is not None and record.uses_model):
            continue
        if all(_file_holds(destination, f) for f in record.files):
            found = record
            if not record.uses_model:
                break
    return found


def _file_holds(destination: Location, entry: dict[str, Any]) -> bool:
    """The file exists with the recorded size and sha256."""
    try:
        if destination.size(entry["path"]) != entry["size"]:
            return False
        return sha256_hex(destination.read_bytes(entry["path"])) == entry["sha256"]
    except (OSError, KeyError, TypeError):
        return False


def build_part(source: Location, destination: Location, run_id: str, plan: PartPlan,
               codecs: ArchiveCodecs, settings: ArchiveSettings, listener: Listener = ignore,
               observers: Sequence[ObserverFactory] = ()) -> PartEvent:
    """Build one part's files, or reuse them when an earlier build finished this part and its
    files still hash to what its record says. `listener` hears `Advanced` as shards are
    written (the caller reports the returned `PartEvent`); each of `observers` makes the
    part's observer, whose findings go into the part's done record."""
    record = finished_part(destination, run_id, plan, codecs)
    if record is not None:
        listener(Advanced(objects=len(plan.objects),
                          bytes=sum(item.size for item in plan.objects)))
        return PartEvent(plan.number, True, len(plan.objects), record)
    writer = new_writer_id()
    builder = PartBuilder(plan.number, codecs.blocks, shard_blocks=settings.shard_blocks,
                          blob_shard_bytes=settings.blob_shard_bytes,
                          zstd_level=settings.zstd_level, max_pixels=settings.max_pixels,
                          object_digest_bytes=settings.object_digest_bytes,
                          fidelity=settings.fidelity, verify_shards=settings.verify_shards,
                          listener=listener,
                          observers=[make(plan.number) for make in observers],
                          whole_rasters=settings.codec in WHOLE_RASTER_CODECS,
                          model_codec=codecs.model)
    for item in plan.objects:
        if item.size > settings.max_object_bytes:
            builder.add_skipped(item.key, item.size,
                                f"{item.size} bytes > max_object_bytes "
                                f"{settings.max_object_bytes}; not archived (raise the limit "
                                "on a machine with the memory)")
            continue
        try:
            data = source.read_object(item)
        except Exception as error:  # noqa: BLE001 - unreadable objects are recorded, not fatal
            builder.add_skipped(item.key, item.size,
                                f"unreadable in source: {type(error).__name__}: {error}")
            continue
        builder.add(item.key, data)
    data, index = builder.finish()
    files = []
    for role, path, content in (("data", data_path(run_id, plan.number, writer), data),
                                ("index", index_path(run_id, plan.number, writer), index)):
        destination.write_atomic(path, content)
        files.append({"role": role, "path": path, "size": len(content),
                      "sha256": sha256_hex(content)})
    keys = [item.key for item in plan.objects]
    done = done_path(run_id, plan.number, writer)
    record = PartRecord(
        part=plan.number, writer=writer, fingerprint=plan.fingerprint,
        objects=len(plan.objects), min_key=min(keys), max_key=max(keys),
        shards=builder.shards, files=files, stats=builder.stats,
        # the Parquet footer's length (+8 for its length field and magic): readers fetch it in
        # one exact range read instead of pyarrow's 64 KiB guess from the end
        data_footer_bytes=int.from_bytes(data[-8:-4], "little") + 8,
        observed={observer.name: observer.finish() for observer in builder.observers},
        done_path=done)
    destination.write_atomic(done, record.to_json())  # last: marks the part finished
    return PartEvent(plan.number, False, len(plan.objects), record)


def build_manifest(destination: Location, run_id: str, source_url: str,
                   settings: ArchiveSettings, codec_name: str, model_sha256: str | None,
                   records: list[PartRecord], started: float | None = None,
                   format_version: int = FORMAT_VERSION,
                   local_keys: dict[str, Any] | None = None,
                   on_commit: CommitHook | None = None,
                   model_store: str | None = None,
                   model_decision: ModelDecision | None = None) -> Manifest:
    """The manifest of a run from its parts' done records: every file with its checksum, the
    parts and totals, the model (its copy, or its name in `model_store`), and the files
    `on_commit` writes now (the report's)."""
    records = sorted(records, key=lambda r: r.part)
    if [r.part for r in records] != list(range(len(records))):
        raise ArchiveError(f"{destination.url}: parts {[r.part for r in records]} are not "
                           "0..N-1; some part was not built")
    totals = PartStats()
    for record in records:
        totals.add(record.stats)
    if totals.whole_rasters:
        format_version = max(format_version, WHOLE_RASTER_VERSION)
    if totals.unit_objects:  # its index locates objects' units (`units`)
        format_version = max(format_version, UNITS_VERSION)
    files = [f for record in records for f in record.files]
    models = []
    model_codec = AUTO_MODEL_CODEC if codec_name == AUTO_CODEC else codec_name  # its user
    if model_sha256 and model_store is not None:
        models.append({"codec": model_codec, "sha256": model_sha256, "store": model_store,
                       "path": store_model_path(model_sha256)})
        format_version = max(format_version, MODEL_STORE_VERSION)
    elif model_sha256:
        path = model_path(run_id, model_sha256)
        size = destination.size(path) if destination.exists(path) else 0
        files.append({"role": "model", "path": path, "size": size, "sha256": model_sha256})
        models.append({"codec": model_codec, "sha256": model_sha256, "path": path})
    # run bookkeeping: not needed to restore, named so that `verify` covers every file
    done_files = [r.done_path or done_path(run_id, r.part, r.writer)
                  for r in records]
    for path in [f"{run_dir(run_id)}/run.json"] + done_files:
        data = destination.read_bytes(path)
        files.append({"role": "bookkeeping", "path": path, "size": len(data),
                      "sha256": sha256_hex(data)})
    manifest = Manifest(
        format=FORMAT_NAME, format_version=format_version, run_id=run_id,
        created_unix=time.time(), source=source_url, settings=asdict(settings),
        codec=codec_name, models=models, fidelity=settings.fidelity,
        object_digest_bytes=settings.object_digest_bytes,  # length of index sha256_prefix
        parts=[PartEntry.of(r) for r in records], totals=asdict(totals), files=files,
        archive_seconds=None if started is None else round(time.time() - started, 3),
        auto_model=None if model_decision is None else model_decision.describe(),
        # keys a local folder cannot hold as they are (object storage restores take them all)
        local_unsafe_keys=local_keys)
    if on_commit is not None:
        files.extend(on_commit(destination, manifest, records))  # e.g. the report's file
    return manifest


def finalize(destination: Location, run_id: str, source_url: str, settings: ArchiveSettings,
             codecs: ArchiveCodecs, records: list[PartRecord],
             started: float | None = None,
             local_keys: dict[str, Any] | None = None,
             on_commit: CommitHook | None = None,
             model_store: Location | None = None,
             model_decision: ModelDecision | None = None) -> dict[str, Any]:
    """Run `on_commit` (its files join the manifest), write a copy of the manifest under this
    commit's writer id (what `repair` restores from), then the manifest itself, exclusively and
    last; return its JSON form. If another writer committed first, nothing of its archive is
    touched and the error lists this writer's files that its manifest does not name. `auto`'s
    model is copied now, if a shard used it."""
    model = used_model(codecs, records)
    if model and not codecs.upfront_model and codecs.model is not None:
        copy_model(codecs.model, destination, run_id, model_store)
    manifest = build_manifest(destination, run_id, source_url, settings, settings.codec,
                              model, records, started, local_keys=local_keys,
                              on_commit=on_commit,
                              model_store=store_url(model_store) if model_store else None,
                              model_decision=model_decision)
    sealed = seal_manifest(manifest.as_dict())
    copy = commit_path(run_id, new_writer_id())
    destination.write_atomic(copy, sealed)
    try:
        destination.create_exclusive(MANIFEST, sealed)
    except FileExistsError:
        destination.remove(copy)
        raise ArchiveError(_lost_commit(destination, manifest)) from None
    return manifest.as_dict()


def _lost_commit(destination: Location, ours: Manifest) -> str:
    """What a writer that lost the race to commit says: which of its files no manifest names."""
    try:
        theirs = parse_manifest(destination.read_bytes(MANIFEST), MANIFEST)
        named = {f["path"] for f in theirs["files"]}
    except (IntegrityError, OSError, KeyError, TypeError):
        named = set()
    left = sorted(f["path"] for f in ours.files
                  if f["path"] not in named and f["role"] != "model")
    note = (f"; this writer's files that it does not name, safe to delete: {', '.join(left)}"
            if left else "; every file this writer made is part of it")
    return (f"{destination.url}: another writer completed this archive first ({MANIFEST} "
            f"exists); nothing of it was overwritten{note}")


def archive(source_url: str, destination_url: str, settings: ArchiveSettings | None = None,
            *, run_id: str | None = None, source_options: dict[str, Any] | None = None,
            destination_options: dict[str, Any] | None = None,
            listener: Listener = ignore, observers: Sequence[ObserverFactory] = (),
            on_commit: CommitHook | None = None,
            model_store: str | None = None) -> dict[str, Any]:
    """Archive every object below `source_url` into `destination_url`; return the manifest.

    In process and sequential; `listener` hears the work as it is done (`events`: objects
    coded, and each part as it is finished); `observers` and `on_commit` add what the layers
    above keep with the archive (`recarchive.api.archive` adds the compression report).
    `model_store`: a folder or bucket (opened with `destination_options`) where many archives
    share one copy of each model, named by its sha256, instead of a copy in each archive.
    """
    settings = settings or ArchiveSettings()
    started = time.time()
    source = open_location(source_url, source_options)
    destination = open_location(destination_url, destination_options)
    if not source.fs.exists(source.root):
        raise ArchiveError(f"{source_url}: source does not exist")
    done = completed_run(destination, source_url, settings, run_id)
    if done is not None:
        return dict(done, already_complete=True)
    store = open_location(model_store, destination_options) if model_store else None
    run_id, codecs = start_run(destination, source_url, settings, run_id, store)
    records = []
    audit = LocalKeyAudit()
    for plan in plan_parts(source_objects(source, destination, audit), settings):
        event = build_part(source, destination, run_id, plan, codecs, settings, listener,
                           observers)
        records.append(event.record)
        listener(event)
    if not records:
        raise ArchiveError(f"{source_url}: no objects to archive")
    decision = decide_model(codecs, records, store)
    if decision is not None and not decision.kept and decision.rebuild:
        plain = ArchiveCodecs(codecs.blocks)
        rebuilt = {plan.number: build_part(source, destination, run_id, plan, plain, settings,
                                           ignore, observers).record
                   for plan in rebuild_plans(source, destination, settings, records,
                                             decision.rebuild)}
        for record in records:
            if record.part in rebuilt:
                discard_part(destination, record)
        records = [rebuilt.get(record.part, record) for record in records]
    return finalize(destination, run_id, source_url, settings, codecs, records, started,
                    audit.summary(), on_commit, store, decision)
