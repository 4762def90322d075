"""`recarchive bench codec`: rate, speed and exactness of a codec on a data set, beside the
classical codecs on the same images.

Images are grouped into shards of `shard_blocks`; each shard is encoded, serialized, decoded
and compared. `bits_per_dim` counts every byte of every shard's payload (initial bits, heads,
headers, checksums) over the images' dimensions. With `workers` > 1 the shards are coded by
that many processes of one torch thread each, as an archive job's actors code them, and the
speeds are the machine's: all raw bytes over the wall-clock time of all shards.

`photo-val-images` codes the photo corpus's validation files whole, through the path an
archive takes: each image cut into 32×32 blocks (edges padded), its blocks kept together in
raster order, the images in the order an archive lists them, shards of at most `shard_blocks`
consecutive blocks cut between block rows (`archives.blocks.shard_ends`), each with its
geometry (a block-context model reads the neighbours in its shard). `bits_per_dim` is every
payload byte over the images' own dimensions (padding is a cost, not a dimension), and the
classical codecs code the same whole images,
plus `jpegxl_blocks_bits_per_dim`: JPEG-XL on the same 32×32 blocks, each alone.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from recarchive.archives.blocks import block_grid, cut_blocks, shard_ends
from recarchive.codecs.base import (
    SHARDS_TOGETHER,
    BlockGeometry,
    decode_shards,
    encode_shards,
)
from recarchive.codecs.bitswap import ring_of
from recarchive.codecs.rec import RecSettings
from recarchive.report.classical import (
    baseline_bits_per_dim,
    jpegxl_bytes,
    png_bytes,
    webp_bytes,
    zstd_bytes,
)

DATASETS = ("cifar10-test", "cifar10-validation", "photo-val", "photo-val-images", "mnist-test",
            "mnist-validation")
WHOLE_IMAGES = ("photo-val-images",)


def load_whole_images(name: str, limit: int | None) -> list[np.ndarray]:
    """Whole RGB images of a data set, in the order an archive of their folder lists them."""
    from PIL import Image

    from recarchive import datasets

    if name != "photo-val-images":
        raise ValueError(f"unknown whole-image data set {name!r}: use one of "
                         f"{', '.join(WHOLE_IMAGES)}")
    images = []
    for path in datasets.photo_files("validation")[:limit]:
        with Image.open(path) as image:
            images.append(np.ascontiguousarray(np.asarray(image.convert("RGB"))))
    return images


def load_dataset(name: str, limit: int | None) -> np.ndarray:
    from recarchive import datasets

    if name == "cifar10-test":
        images = datasets.cifar10_split("test")
    elif name == "cifar10-validation":
        images = datasets.cifar10_split("validation")
    elif name in ("mnist-test", "mnist-validation"):  # whole 28×28 digits, (N, 28, 28, 1)
        images = datasets.load_mnist_images(name.split("-")[1])[..., None]
    elif name == "photo-val":
        images = datasets.random_patches(datasets.photo_files("validation"), 10_000, seed=2024)
    else:
        raise ValueError(f"unknown data set {name!r}: use one of {', '.join(DATASETS)}")
    return np.ascontiguousarray(images[:limit] if limit else images)


def whole_image_shards(whole: list[np.ndarray],
                       shard_blocks: int) -> tuple[np.ndarray, BlockGeometry, list[slice]]:
    """Whole images' blocks, their geometry and the shards an archive cuts them into. The
    geometry's objects are split where shards split them (a shard reads no other's blocks)."""
    blocks = np.concatenate([cut_blocks(image) for image in whole])
    grids = [block_grid(*image.shape[:2]) for image in whole]
    counts = [rows * cols for rows, cols in grids]
    owners = np.repeat(np.arange(len(whole)), counts)
    cells = np.concatenate([np.arange(count) for count in counts])
    rows = np.repeat([r for r, _ in grids], counts)
    cols = np.repeat([c for _, c in grids], counts)
    ends = shard_ends(cells, cols, shard_blocks, final=True)
    spans = [slice(a, b) for a, b in zip([0, *ends[:-1]], ends, strict=True)]
    shard_of = np.repeat(np.arange(len(spans)), [s.stop - s.start for s in spans])
    objects = owners * len(spans) + shard_of
    heights = np.repeat([image.shape[0] for image in whole], counts)
    widths = np.repeat([image.shape[1] for image in whole], counts)
    return blocks, BlockGeometry(objects, cells, rows, cols, heights, widths), spans


def neg_elbo_bits_per_dim(codec, images: np.ndarray, batch: int = 250,
                          geometry: BlockGeometry | None = None) -> float | None:
    """The float model's −ELBO (one seeded sample per image), where the codec has one; a
    block-context model reads the neighbours `geometry` names."""
    from recarchive.models import zoo

    if hasattr(codec, "neg_elbo_bits_per_dim"):  # codecs whose model is not Bit-Swap's
        if getattr(codec, "uses_block_context", False):  # `causal`: the shards' layout
            return codec.neg_elbo_bits_per_dim(images, geometry)
        return codec.neg_elbo_bits_per_dim(images)
    data = getattr(codec, "model_bytes", lambda: None)()
    if data is None:
        return None
    model = zoo.load_bitswap_bytes(data, None, "benchmark model").float_model
    torch.manual_seed(0)
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).to(torch.int64)
    neighbours = (geometry or BlockGeometry.lone(len(images))).neighbours()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = pixels[start : start + batch].float()
            ring = None
            if model.config.block_context != "none":
                centred, mask = ring_of(pixels, neighbours[start : start + batch])
                ring = (centred.float(), mask.float())
            total += float(model.bits_per_dim(x, ring).sum())
    return total / len(images)


def rec_search_share(codec, blocks: np.ndarray, geometry) -> float:
    """The share of REC's encoding time its latent choice takes (posterior and search), on
    one shard encoded again here, in this process."""
    started = time.perf_counter()
    codec.encode(blocks, geometry)
    return codec.last_search_seconds / (time.perf_counter() - started)


def run_codec_benchmark(codec_name: str, model: str | None, dataset: str, limit: int | None,
                        shard_blocks: int = 1024, chains: int | None = None,
                        baselines: bool = True, codec_options: dict | None = None,
                        workers: int = 1, shards_together: int | None = None) -> dict:
    from recarchive.codecs import get_codec

    options = dict(codec_options or {})
    if model:
        options["model"] = model
    if chains:
        options["chains"] = chains
    codec = get_codec(codec_name, **options)
    whole = load_whole_images(dataset, limit) if dataset in WHOLE_IMAGES else None
    geometry = None
    if whole is not None:
        images, geometry, spans = whole_image_shards(whole, shard_blocks)
    else:
        images = load_dataset(dataset, limit)
        spans = [slice(i, i + shard_blocks) for i in range(0, len(images), shard_blocks)]
    shards = [(images[span], None if geometry is None else geometry[span]) for span in spans]
    shards_together = shards_together or SHARDS_TOGETHER
    groups = shard_groups(len(shards), workers, shards_together)
    if workers > 1:
        encoded, encode_s, decode_s, exact = _code_in_processes(codec_name, options, shards,
                                                                groups, workers)
    else:
        encoded, encode_s, decode_s, exact = _code_here(codec, shards, groups)
    exact_kwargs = {"geometry": geometry} if getattr(codec, "uses_block_context", False) else {}
    dims = sum(image.size for image in whole) if whole is not None else images.size
    payload_bits = 8 * sum(len(e.payload) for e in encoded)
    clean_words = [e.params.get("clean_words") for e in encoded]
    result = {
        "codec": codec_name,
        "model": model,
        "model_sha256": codec.model_sha256,
        "dataset": dataset,
        "images": len(whole) if whole is not None else len(images),
        "blocks": len(images),
        "shards": len(shards),
        "shard_blocks": shard_blocks,
        "bits_per_dim": payload_bits / dims,
        "payload_bytes": payload_bits // 8,
        "neg_elbo_bits_per_dim": neg_elbo_bits_per_dim(codec, images, geometry=geometry),
        # REC: the same bound for the integer model the coder runs (see RecCodec)
        "exact_neg_elbo_bits_per_dim": (codec.exact_neg_elbo_bits_per_dim(images,
                                                                         **exact_kwargs)
                                        if hasattr(codec, "exact_neg_elbo_bits_per_dim")
                                        else None),
        "initial_bits_per_shard": (32 * float(np.mean(clean_words))
                                   if None not in clean_words else None),
        # Bit-Swap: how each chain's first block was coded ("raw": plain bytes that stand in
        # for most initial bits; "bits-back": from clean bits), shards' values joined
        "first_block": ",".join(sorted({str(e.params["first_block"]) for e in encoded
                                        if "first_block" in e.params})) or None,
        # Coded bits less the initial (clean) bits each shard consumed: the exact model's own
        # rate, to set against the float model's -ELBO.
        "net_bits_per_dim": ((payload_bits - 32 * sum(clean_words)) / dims
                             if None not in clean_words else None),
        "encode_mb_per_s": dims / encode_s / 1e6,
        "decode_mb_per_s": dims / decode_s / 1e6,
        "encode_seconds": encode_s,
        "decode_seconds": decode_s,
        "roundtrip_exact": exact,
        "torch_threads": 1 if workers > 1 else torch.get_num_threads(),
        "workers": workers,
        "shards_together": shards_together,
    }
    params = [e.params for e in encoded]
    if params and "latent_bits" in params[0]:  # REC: what the latent cost, and its search
        result["latent_bits_per_image"] = sum(p["latent_bits"] for p in params) / len(images)
        result["search_steps_mean"] = float(np.mean([p["search_steps_mean"] for p in params]))
        result["truncated_blocks"] = sum(p["truncated_blocks"] for p in params)
        if result["neg_elbo_bits_per_dim"] is not None:  # what REC adds to the model's rate
            result["rec_overhead_bits_per_dim"] = (result["bits_per_dim"]
                                                   - result["neg_elbo_bits_per_dim"])
        result["rec_search_share"] = rec_search_share(codec, *shards[0])
    if whole is not None and result["neg_elbo_bits_per_dim"] is not None:
        # the model's bits on every block coded, padding included, over the images' own dims
        result["neg_elbo_bits_per_dim"] *= images.size / dims
    if baselines:
        result.update(_whole_baselines(whole, images) if whole is not None
                      else _baselines(images))
    return result


def _whole_baselines(whole: list[np.ndarray], blocks: np.ndarray) -> dict:
    """Classical codecs on the same whole images (each its own file), and JPEG-XL on their
    32×32 blocks each alone; bits over the images' own dimensions."""
    dims = sum(image.size for image in whole)
    result = {f"{name}_bits_per_dim": 8 * sum(encode(image) for image in whole) / dims
              for name, encode in (("png", png_bytes), ("webp", webp_bytes),
                                   ("jpegxl", jpegxl_bytes), ("zstd", zstd_bytes))}
    result["jpegxl_blocks_bits_per_dim"] = 8 * sum(jpegxl_bytes(block) for block in blocks) / dims
    return result


def shard_groups(count: int, workers: int, together: int) -> list[list[int]]:
    """Consecutive shards a worker codes together (`encode_shards`): at most `together` a
    group, as many groups as keep every worker busy, groups of sizes as even as can be."""
    if count == 0:
        return []
    groups = workers * -(-count // (workers * together))
    return [part.tolist() for part in np.array_split(np.arange(count), groups) if len(part)]


def _code_here(codec, shards: list[tuple[np.ndarray, BlockGeometry | None]],
               groups: list[list[int]]):
    """(encoded shards, encode seconds, decode seconds, all exact) in this process."""
    start = time.perf_counter()  # groups are runs of consecutive shards, in order
    encoded = [shard for group in groups
               for shard in encode_shards(codec, [shards[i] for i in group])]
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = [blocks for group in groups
               for blocks in decode_shards(codec, [encoded[i] for i in group])]
    decode_s = time.perf_counter() - start
    exact = all(np.array_equal(d, s) for d, (s, _) in zip(decoded, shards, strict=True))
    return encoded, encode_s, decode_s, exact


_worker_codec = None
_worker_barrier = None
WORKER_START_TIMEOUT_S = 600


def _start_worker(codec_name: str, options: dict, barrier) -> None:
    from recarchive.codecs import get_codec

    global _worker_codec, _worker_barrier
    torch.set_num_threads(1)
    _worker_codec = get_codec(codec_name, **options)
    _worker_barrier = barrier


def _worker_ready(_: int) -> int:
    """Holds its task until every worker holds one, so each worker process takes one task and
    has started (a sleep here raced: a worker slow to import could leave both to another)."""
    import os

    _worker_barrier.wait(timeout=WORKER_START_TIMEOUT_S)
    return os.getpid()


def _worker_encode(shards: list[tuple[np.ndarray, BlockGeometry | None]]):
    return encode_shards(_worker_codec, shards)


def _worker_decode(encoded: list) -> list[np.ndarray]:
    return decode_shards(_worker_codec, encoded)


def _code_in_processes(codec_name: str, options: dict, shards: list[np.ndarray],
                       groups: list[list[int]], workers: int):
    """As `_code_here`, with the groups of shards spread over `workers` processes; the clocks
    start once every worker has loaded its codec."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(codec_name, options, context.Barrier(workers))) as pool:
        ready = set(pool.map(_worker_ready, range(workers)))
        if len(ready) != workers:
            raise RuntimeError(f"only {len(ready)} of {workers} benchmark workers started")
        start = time.perf_counter()
        coded = list(pool.map(_worker_encode, [[shards[i] for i in g] for g in groups]))
        encode_s = time.perf_counter() - start
        start = time.perf_counter()
        back = list(pool.map(_worker_decode, coded))
        decode_s = time.perf_counter() - start
    encoded = [shard for group in coded for shard in group]
    decoded = [blocks for group in back for blocks in group]
    exact = all(np.array_equal(d, s) for d, (s, _) in zip(decoded, shards, strict=True))
    return encoded, encode_s, decode_s, exact


def run_rec_sweep(model: str, dataset: str, limit: int | None, variants: list[dict],
                  fit_images: int = 500, shard_blocks: int = 1024) -> list[dict]:
    """The REC codec under other settings (standard / partitioned, PFR / ORC, block budgets,
    sample counts; a variant's optional "selection" is the encoder's, `RecCodec`'s) on the same
    images: one `run_codec_benchmark` each. Each variant's tables are fitted on `fit_images`
    random training images (never the benchmark's)."""
    from recarchive.training.vae import load_training_data

    train, _ = load_training_data("mnist" if dataset.startswith("mnist") else "cifar10")
    rng = np.random.default_rng(0)
    fit = train[np.sort(rng.choice(len(train), fit_images, replace=False))]
    rows = []
    for variant in variants:
        settings = {k: v for k, v in variant.items() if k != "selection"}
        options = {"settings": RecSettings(**settings), "fit_images": fit}
        if "selection" in variant:
            options["selection"] = variant["selection"]
        rows.append(run_codec_benchmark("rec", model, dataset, limit, shard_blocks,
                                        baselines=False, codec_options=options)
                    | {"rec": variant})
    return rows


def _baselines(images: np.ndarray) -> dict:
    """Classical codecs; one-channel images go as grayscale (H, W), except to WebP, which only
    takes RGB: it gets the gray replicated (its subtract-green transform makes that nearly
    free) and its bits are counted over the gray dimensions."""
    if images.shape[-1] != 1:
        return baseline_bits_per_dim(images)
    result = baseline_bits_per_dim(images[..., 0], ("png", "jpegxl", "zstd"))
    rgb = np.repeat(images, 3, axis=-1)
    result["webp_bits_per_dim"] = 3 * baseline_bits_per_dim(rgb, ("webp",))["webp_bits_per_dim"]
    return result


def format_table(result: dict) -> str:
    rows = [f"{key:>26}  {value}" for key, value in result.items()]
    return "\n".join(rows)
