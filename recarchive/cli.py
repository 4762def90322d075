"""The `recarchive` command line.

Each subcommand is one `add_*_parser` function (its arguments) and one `cmd_*` function (its
work), listed in `SUBCOMMANDS`; each `bench` target is one entry of `BENCH_TARGETS`. Heavy
modules are imported inside the commands, so `recarchive --help` stays fast and one broken
optional dependency cannot take down unrelated commands.

Exit codes: 0 success, 1 a failure the user can act on (bad input, missing device or file, a
benchmark whose correctness check failed), 2 a usage error (from argparse), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from recarchive import __version__

PROG = "recarchive"
Result = dict[str, Any]


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (underscores allowed, as in 1_000_000)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


# --- bench ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchTarget:
    """One `recarchive bench TARGET`: its options, its run, and its human-readable form.

    `run` returns a JSON-ready dict; keys ending in `_exact` or `_identical` are correctness
    checks, and one that is False makes the command fail after printing the result.
    """

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Result]
    table: Callable[[Result], str]


def _ans_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--symbols", type=positive_int, default=10**6,
                        help="symbols to code, rounded up to whole steps (default 1000000)")
    parser.add_argument("--lanes", type=positive_int, default=192,
                        help="interleaved rANS lanes (default 192)")
    parser.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cuda: require the GPU measurement (it runs anyway when CUDA is "
                        "present)")
    parser.add_argument("--no-constriction", dest="constriction", action="store_false",
                        help="skip the constriction reference coder")


def _ans_run(args: argparse.Namespace) -> Result:
    from recarchive.bench.ans_bench import run_ans_benchmark

    return run_ans_benchmark(symbols=args.symbols, lanes=args.lanes, seed=args.seed,
                             device=args.device, with_constriction=args.constriction)


def _ans_table(result: Result) -> str:
    from recarchive.bench.ans_bench import format_table

    return format_table(result)


def _archive_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="only the first N CIFAR-10 test images (default all 10000)")
    parser.add_argument("--shard-blocks", type=positive_int, default=1024,
                        help="blocks per shard (default 1024)")
    parser.add_argument("--codec", default="order0", help="codec (default order0)")
    parser.add_argument("--model", default=None,
                        help="the codec's model: a zoo name or a file (default: its own)")
    parser.add_argument("--compare-codec", default=None, metavar="CODEC",
                        help="also archive the same images with CODEC (e.g. bitswap beside "
                        "--codec rec) and report its one-object restore as compare_*")
    parser.add_argument("--compare-model", default=None,
                        help="the model of --compare-codec (default: its own)")
    parser.add_argument("--object-digest-bytes", type=object_digest_bytes, default=None,
                        metavar="N", help="bytes of each object's sha256 in the index, 8..32 "
                        "(default: the archive default, 8)")
    parser.add_argument("--jpeg-images", type=int, default=100, metavar="N",
                        help="also archive N photo-validation files saved as JPEG and report "
                        "the saving (default 100; 0 skips it)")
    parser.add_argument("--model-store", action="store_true",
                        help="keep the model in a shared store beside the archive, as many "
                        "archives would (auto then keeps it wherever it saves bytes)")


def _archive_bench_run(args: argparse.Namespace) -> Result:
    from recarchive.bench.archive_bench import run_archive_benchmark

    return run_archive_benchmark(limit=args.limit, shard_blocks=args.shard_blocks,
                                 codec=args.codec,
                                 object_digest_bytes=args.object_digest_bytes,
                                 jpeg_images=args.jpeg_images, model_store=args.model_store,
                                 model=args.model, compare_codec=args.compare_codec,
                                 compare_model=args.compare_model)


def _archive_bench_table(result: Result) -> str:
    from recarchive.bench.archive_bench import format_table

    return format_table(result)


def _rec_synthetic_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plots", metavar="DIR", default=None,
                        help="write the PNG plots into DIR")
    parser.add_argument("--quick", action="store_true",
                        help="smaller samples (a few seconds; what the tests run)")
    parser.add_argument("--seed", type=int, default=0, help="experiment seed (default 0)")


def _rec_synthetic_run(args: argparse.Namespace) -> Result:
    from recarchive.bench.rec_synthetic import run_rec_synthetic

    return run_rec_synthetic(seed=args.seed, quick=args.quick, plots_dir=args.plots)


def _rec_synthetic_table(result: Result) -> str:
    from recarchive.bench.rec_synthetic import format_table

    return format_table(result)


def _gpu_check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cuda",
                        help="cuda (default), or cpu: the same checks with torch on the CPU")
    parser.add_argument("--blocks", type=int, default=1024, help="CIFAR-10 test blocks (1024)")
    parser.add_argument("--chains", type=int, default=64, help="chains per shard (64)")
    parser.add_argument("--blocks-file", default=None,
                        help="the blocks as .npy, where ../shared/data is not there")


def _gpu_check_run(args: argparse.Namespace) -> Result:
    from recarchive.bench.gpu_check import run_gpu_check

    return run_gpu_check(args.device, args.blocks, args.chains, blocks_file=args.blocks_file)


def _scale_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="small datasets, one run each (what the tests run)")
    parser.add_argument("--address", default=None,
                        help="an existing Ray cluster (default: a private local one, 2 CPUs)")
    parser.add_argument("--model", default=None,
                        help="also measure a Bit-Swap actor's memory with this model")


def _scale_run(args: argparse.Namespace) -> Result:
    from recarchive.bench.scale_bench import run_scale_benchmark

    return run_scale_benchmark(quick=args.quick, address=args.address, model=args.model,
                               repeats=1 if args.quick else 2)


def _scale_table(result: Result) -> str:
    from recarchive.bench.scale_bench import format_table

    return format_table(result)


BENCH_TARGETS: dict[str, BenchTarget] = {
    "ans": BenchTarget(
        help="interleaved rANS coder: speed, rate overhead, backend agreement, constriction",
        add_arguments=_ans_arguments,
        run=_ans_run,
        table=_ans_table,
    ),
    "archive": BenchTarget(
        help="archive format on CIFAR-10 test: index overhead, bytes read to restore one "
        "image, archive/restore throughput",
        add_arguments=_archive_bench_arguments,
        run=_archive_bench_run,
        table=_archive_bench_table,
    ),
    "codec": BenchTarget(
        help="a codec's bits/dim, speed and exactness on a data set, beside PNG/WebP/JPEG-XL",
        add_arguments=lambda parser: _codec_arguments(parser),
        run=lambda args: _codec_run(args),
        table=lambda result: _codec_table(result),
    ),
    "scale": BenchTarget(
        help="distributed archive on Ray: speedup with 2 CPU actors, driver and actor "
        "memory for two dataset sizes, GPU-actor throughput where there is a GPU",
        add_arguments=_scale_arguments,
        run=_scale_run,
        table=_scale_table,
    ),
    "gpu-check": BenchTarget(
        help="Bit-Swap on the GPU: the CPU's bytes, decoded across devices, and GPU MB/s "
        "and coder symbols/s (`make gpu-check`)",
        add_arguments=_gpu_check_arguments,
        run=_gpu_check_run,
        table=lambda result: "\n".join(f"{k:24} {v}" for k, v in result.items()),
    ),
    "rec-synthetic": BenchTarget(
        help="relative entropy coding on 5-D Gaussians: PFR runtime vs D∞, codelength vs I, "
        "ORC bias vs budget, standard and space-partitioned",
        add_arguments=_rec_synthetic_arguments,
        run=_rec_synthetic_run,
        table=_rec_synthetic_table,
    ),
}


def _codec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--codec", default="bitswap", help="codec name (default bitswap)")
    parser.add_argument("--model", default=None, help="model name or file (codec default)")
    parser.add_argument("--dataset", default="cifar10-test",
                        help="cifar10-test, cifar10-validation, photo-val (random 32x32 patches) "
                        "or photo-val-images (the validation photos whole, as an archive codes "
                        "them)")
    parser.add_argument("--limit", type=positive_int, default=None, help="first N images only")
    parser.add_argument("--shard-blocks", type=positive_int, default=1024)
    parser.add_argument("--chains", type=positive_int, default=None,
                        help="chains per shard (Bit-Swap; default the codec's)")
    parser.add_argument("--mode", choices=("bitswap", "bbans"), default=None,
                        help="Bit-Swap's coding order, or BB-ANS's (default bitswap)")
    parser.add_argument("--adapt", type=int, choices=(0, 1, 2, 3), default=None,
                        help="causal: the adaptation version to code with (default the "
                             "latest, 3, histograms with contexts by the neighbours' errors "
                             "and across colours; 2 the pictures' histograms; 1 without them; "
                             "0 none: what shards written before each code with)")
    parser.add_argument("--no-baselines", dest="baselines", action="store_false")
    parser.add_argument("--workers", type=positive_int, default=1,
                        help="processes coding shards side by side, one torch thread each "
                             "(default 1: this process, its torch threads)")
    parser.add_argument("--shards-together", type=positive_int, default=None,
                        help="shards a worker codes together, their chains in one batch "
                             "(Bit-Swap; default 8; 1: each alone)")


def _codec_run(args: argparse.Namespace) -> Result:
    from recarchive.bench.codec_bench import run_codec_benchmark

    options = {"mode": args.mode} if args.mode else {}
    if args.adapt is not None:
        if args.codec != "causal":
            raise ValueError("bench codec: --adapt is the causal codec's option; drop it "
                             f"for --codec {args.codec}")
        options["adapt"] = args.adapt
    return run_codec_benchmark(args.codec, args.model, args.dataset, args.limit,
                               args.shard_blocks, args.chains, args.baselines, options,
                               workers=args.workers,
                               shards_together=args.shards_together)


def _codec_table(result: Result) -> str:
    from recarchive.bench.codec_bench import format_table

    return format_table(result)


def add_bench_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("bench", help="measure and check a component",
                                 description="Measure a component and check its results.")
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    for name, target in BENCH_TARGETS.items():
        sub = targets.add_parser(name, help=target.help, description=target.help)
        sub.add_argument("--json", action="store_true",
                         help="print one JSON object on stdout instead of a table")
        target.add_arguments(sub)
        sub.set_defaults(bench_target=target)
    parser.set_defaults(handler=cmd_bench)


def failed_checks(result: Result) -> list[str]:
    return [k for k, v in result.items() if k.endswith(("_exact", "_identical")) and v is False]


def cmd_bench(args: argparse.Namespace) -> int:
    """Run one bench target; print it; fail if any of its correctness checks failed, so that
    `make bench` in CI catches a coder that got fast by getting wrong."""
    target: BenchTarget = args.bench_target
    result = target.run(args)
    print(json.dumps(result, allow_nan=False) if args.json else target.table(result))
    failed = failed_checks(result)
    if failed:
        print(f"{PROG}: error: bench {args.target}: checks failed: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    return 0


# --- train ---------------------------------------------------------------------------------


def add_train_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="train a model on ../shared/data",
                                 description="Train a model; rerun with the same --out resumes.")
    models = parser.add_subparsers(dest="model_family", metavar="MODEL", required=True)
    sub = models.add_parser("bitswap", help="a Bit-Swap hierarchical VAE")
    sub.add_argument("--dataset", choices=("cifar10", "photo"), default="cifar10")
    sub.add_argument("--out", required=True, help="folder for checkpoints (resumes from it)")
    sub.add_argument("--steps", type=positive_int, default=20_000)
    sub.add_argument("--batch-size", type=positive_int, default=64)
    sub.add_argument("--lr", type=float, default=2e-3)
    sub.add_argument("--free-bits", type=float, default=0.1)
    sub.add_argument("--max-minutes", type=float, default=None)
    sub.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    sub.add_argument("--bfloat16", action="store_true",
                     help="residual blocks in bfloat16 autocast (1.4x faster per step on "
                          "this project's AVX512-BF16 CPU; unmeasured on GPUs)")
    sub.add_argument("--latent-layers", type=positive_int, default=4)
    sub.add_argument("--latent-channels", type=positive_int, default=8)
    sub.add_argument("--width", type=positive_int, default=64)
    sub.add_argument("--res-blocks", type=int, default=1)
    sub.add_argument("--pixel-context", choices=("none", "checkerboard", "interlace"),
                     default="none",
                     help="checkerboard: code each block's pixels in two stages, the second "
                          "conditioned on the first (one more net per block); interlace: four "
                          "stages, an eighth of the pixels from the latents alone (three more "
                          "nets; grows from a checkerboard model with --init-from)")
    sub.add_argument("--block-context", choices=("none", "ring"), default="none",
                     help="let each block's pixels read its decoded neighbours' border pixels "
                          "(photo training crops then carry a ring of them; one more net)")
    sub.add_argument("--arithmetic", choices=("fixed64", "int8"), default="fixed64",
                     help="int8: train the residual blocks for 8-bit weights and activations "
                          "(the fast exact form; fine-tune a fixed64 model into it with "
                          "--init-from)")
    sub.add_argument("--channel-context", choices=("none", "linear"), default="none",
                     help="linear: code each pixel's R, G, B in turn, G's and B's means shifted "
                          "by the earlier channels (both codecs)")
    sub.add_argument("--reach", choices=("local", "block"), default="local",
                     help="block: every net gets a coarse path over 4×4-cell averages, so the "
                          "ring of neighbour pixels reaches a block's centre (int8 only)")
    sub.add_argument("--latent", choices=("logistic", "gaussian"), default="logistic",
                     help="gaussian: Gaussian latents under a standard normal prior, the REC "
                          "codec's convolutional VAE (with --latent-layers 1; --init-from a "
                          "Bit-Swap model keeps its bottom layer)")
    sub.add_argument("--latent-noise", type=float, default=1.0,
                     help="train the pixels on latent samples this many times wider than the "
                          "posterior (REC's samples are wider; one Gaussian layer only)")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--init-from", default=None,
                     help="weights to start from (fine-tuning), for a fresh --out: a run's "
                          "checkpoint.pt, a model file or a shipped name like bitswap-cifar")
    sub.set_defaults(handler=cmd_train_bitswap)
    add_train_vae_parser(models)
    add_train_rec_decoder_parser(models)
    add_train_causal_parser(models)


def add_train_causal_parser(models: argparse._SubParsersAction) -> None:
    sub = models.add_parser(
        "causal", help="the causal pixel model (`--codec causal`)",
        description="Train the causal pixel model on random crops of the training photos (or "
                    "CIFAR-10 images); validation codes the validation photos whole. "
                    "jobs/export_causal.py makes the model file.")
    sub.add_argument("--dataset", choices=("photo", "cifar10"), default="photo")
    sub.add_argument("--out", required=True, help="folder for checkpoints (resumes from it)")
    sub.add_argument("--steps", type=positive_int, default=10_000)
    sub.add_argument("--batch-size", type=positive_int, default=16)
    sub.add_argument("--crop", type=positive_int, default=64, help="training crop side (photos)")
    sub.add_argument("--width", type=positive_int, default=None,
                     help="hidden units per colour (default 64; with --init-from the model's "
                          "own, widened to this where it is narrower)")
    sub.add_argument("--mixtures", type=positive_int, default=3,
                     help="logistic components per pixel")
    sub.add_argument("--neighbours", type=positive_int, default=12,
                     help="causal neighbours read (12 to 24, nearest first)")
    sub.add_argument("--init-from", default=None,
                     help="start from this causal model (shipped name or file; its mixtures, "
                          "widened to --neighbours and --width)")
    sub.add_argument("--latent-channels", type=int, default=0,
                     help="> 0: train the REC codec's model, a latent of this many channels "
                          "per 4×4 cells of a 32×32 block read by the causal model "
                          "(`--codec rec`; jobs/export_rec.py makes its file)")
    sub.add_argument("--kl-warmup", type=int, default=500,
                     help="steps over which the latent's KL weight rises from 0 to 1")
    sub.add_argument("--free-bits", type=float, default=0.0,
                     help="latent model: a channel's KL per block below this costs this much "
                          "in training (keeps the latent from collapsing to the prior)")
    sub.add_argument("--lr", type=float, default=2e-3)
    sub.add_argument("--max-minutes", type=float, default=None)
    sub.add_argument("--seed", type=int, default=0)
    sub.set_defaults(handler=cmd_train_causal)


def cmd_train_causal(args: argparse.Namespace) -> int:
    from pathlib import Path

    from recarchive.training.causal import CausalSettings, train

    settings = CausalSettings(dataset=args.dataset, width=args.width, mixtures=args.mixtures,
                              neighbours=args.neighbours, init_from=args.init_from,
                              crop=args.crop,
                              steps=args.steps, batch_size=args.batch_size,
                              learning_rate=args.lr, max_minutes=args.max_minutes,
                              seed=args.seed, latent_channels=args.latent_channels,
                              kl_warmup_steps=args.kl_warmup, free_bits=args.free_bits)
    checkpoint = train(settings, Path(args.out), log=lambda line: print(line, flush=True))
    print(f"checkpoint: {checkpoint}")
    return 0


def add_train_rec_decoder_parser(models: argparse._SubParsersAction) -> None:
    sub = models.add_parser(
        "rec-decoder", help="fine-tune a REC model's pixel nets on the latents its encoder sends",
        description="Fine-tune a convolutional REC model's pixel nets (not its posterior: the "
                    "latents it sends stay the same) on the latents REC's encoder chooses for "
                    "training images; jobs/export_rec.py makes the model file.")
    sub.add_argument("--model", default="rec-cifar-2026-12-06b",
                     help="a convolutional REC model: a shipped name or a model file")
    sub.add_argument("--dataset", choices=("cifar10", "photo"), default="cifar10")
    sub.add_argument("--out", required=True, help="folder for checkpoints (resumes from it)")
    sub.add_argument("--images", type=positive_int, default=6000,
                     help="training images whose chosen latents are the training data")
    sub.add_argument("--steps", type=positive_int, default=2000)
    sub.add_argument("--batch-size", type=positive_int, default=32)
    sub.add_argument("--lr", type=float, default=3e-4)
    sub.add_argument("--max-minutes", type=float, default=None)
    sub.add_argument("--seed", type=int, default=0)
    sub.set_defaults(handler=cmd_train_rec_decoder)


def cmd_train_rec_decoder(args: argparse.Namespace) -> int:
    from pathlib import Path

    from recarchive.training.rec_decoder import DecoderSettings, train_decoder

    settings = DecoderSettings(model=args.model, dataset=args.dataset, images=args.images,
                               steps=args.steps, batch_size=args.batch_size,
                               learning_rate=args.lr, max_minutes=args.max_minutes,
                               seed=args.seed)
    checkpoint = train_decoder(settings, Path(args.out), log=lambda line: print(line, flush=True))
    print(f"checkpoint: {checkpoint}")
    return 0


def cmd_train_bitswap(args: argparse.Namespace) -> int:
    from pathlib import Path

    from recarchive.models.bitswap import BitSwapConfig
    from recarchive.training.bitswap import TrainSettings, train

    config = BitSwapConfig(latent_layers=args.latent_layers,
                           latent_channels=args.latent_channels, width=args.width,
                           res_blocks=args.res_blocks, pixel_context=args.pixel_context,
                           block_context=args.block_context, arithmetic=args.arithmetic,
                           latent=args.latent, channel_context=args.channel_context,
                           reach=args.reach)
    settings = TrainSettings(dataset=args.dataset, steps=args.steps, batch_size=args.batch_size,
                             learning_rate=args.lr, free_bits=args.free_bits,
                             max_minutes=args.max_minutes, device=args.device, seed=args.seed,
                             init_from=args.init_from, bfloat16=args.bfloat16,
                             latent_noise=args.latent_noise, config=config)
    checkpoint = train(settings, Path(args.out), log=lambda line: print(line, flush=True))
    print(f"checkpoint: {checkpoint}")
    return 0


def add_train_vae_parser(models: argparse._SubParsersAction) -> None:
    sub = models.add_parser("vae", help="the REC codec's MLP VAE (rec-mnist, rec-cifar-mlp)")
    sub.add_argument("--dataset", choices=("mnist", "cifar10"), default="mnist")
    sub.add_argument("--out", required=True, help="folder for checkpoints (resumes from it)")
    sub.add_argument("--steps", type=positive_int, default=10_000)
    sub.add_argument("--batch-size", type=positive_int, default=128)
    sub.add_argument("--lr", type=float, default=1e-3)
    sub.add_argument("--max-minutes", type=float, default=None)
    sub.add_argument("--latent-dims", type=positive_int, default=32)
    sub.add_argument("--hidden", type=positive_int, default=512)
    sub.add_argument("--layers", type=positive_int, default=2)
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--export", metavar="FILE", default=None,
                     help="after training, write the model file (nets + REC tables) to FILE")
    sub.set_defaults(handler=cmd_train_vae)


def cmd_train_vae(args: argparse.Namespace) -> int:
    from pathlib import Path

    from recarchive.training.vae import TrainSettings, config_for, export, train

    config = config_for(args.dataset, args.latent_dims, args.hidden, args.layers)
    settings = TrainSettings(dataset=args.dataset, steps=args.steps, batch_size=args.batch_size,
                             learning_rate=args.lr, max_minutes=args.max_minutes,
                             seed=args.seed, config=config)
    checkpoint = train(settings, Path(args.out), log=lambda line: print(line, flush=True))
    print(f"checkpoint: {checkpoint}")
    if args.export:
        export(checkpoint, Path(args.export), log=lambda line: print(line, flush=True))
    return 0


# --- archive, restore, verify, ls ---------------------------------------------------------


def _storage_options_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage-options", metavar="JSON", default=None,
                        help="fsspec storage options as JSON, e.g. "
                        '\'{"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}\'')
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def positive_float(text: str) -> float:
    """argparse type: a number >= 0 (GPUs per actor may be a fraction, or 0 for CPU actors)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def object_digest_bytes(text: str) -> int:
    """argparse type: `--object-digest-bytes`, an integer from 8 to 32."""
    from recarchive.archives.format import OBJECT_DIGEST_MAX_BYTES, OBJECT_DIGEST_MIN_BYTES

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not OBJECT_DIGEST_MIN_BYTES <= value <= OBJECT_DIGEST_MAX_BYTES:
        raise argparse.ArgumentTypeError(
            f"expected {OBJECT_DIGEST_MIN_BYTES} to {OBJECT_DIGEST_MAX_BYTES} (32 = the full "
            f"sha256), got {value}")
    return value


def _ray_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ray-address", metavar="ADDRESS", default=None,
                        help="run on Ray actors: auto (RAY_ADDRESS or the local cluster), "
                        "HOST:PORT, ray://HOST:PORT, or local (a private instance)")
    parser.add_argument("--actors", type=positive_int, default=None,
                        help="with --ray-address: worker actors (default: as many as the "
                        "cluster's CPUs or GPUs allow)")
    parser.add_argument("--gpus-per-actor", type=positive_float, default=None,
                        help="with --ray-address: GPUs each actor reserves, fractions allowed "
                        "(default 1 where the cluster has GPUs, else 0)")
    parser.add_argument("--cpus-per-actor", type=positive_float, default=None,
                        help="with --ray-address: CPUs each actor reserves (default 1)")


def _ray_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"ray_address": args.ray_address, "actors": args.actors,
            "gpus_per_actor": args.gpus_per_actor, "cpus_per_actor": args.cpus_per_actor}


def add_archive_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "archive", help="archive every object of SRC into the archive DST",
        description="Archive every object below SRC (any fsspec URL) into DST; rerunning the "
        "same command resumes an interrupted run.")
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--codec", default="auto",
                        help="auto (default: per raster, Bit-Swap where its model fits and "
                        "codes it smaller than JPEG-XL lossless, else JPEG-XL), jpegxl "
                        "(rasters whole as JPEG-XL lossless, no model), bitswap (every raster "
                        "as blocks; --model bitswap-cifar or bitswap-photo), rec, or order0 "
                        "(the model-free block baseline)")
    parser.add_argument("--model", default=None,
                        help="model name for codecs that need one (auto: Bit-Swap's model, "
                        "default bitswap-cifar)")
    parser.add_argument("--shard-blocks", type=positive_int, default=1024,
                        help="32x32 blocks per shard (default 1024)")
    parser.add_argument("--part-objects", type=positive_int, default=4096,
                        help="objects per part, the unit of work and resume (default 4096)")
    parser.add_argument("--max-pixels", type=positive_int, default=None,
                        help="larger images are kept as bytes, never decoded")
    parser.add_argument("--object-digest-bytes", type=object_digest_bytes, default=None,
                        metavar="N",
                        help="bytes of each object's sha256 kept in the index, 8..32 (default "
                        "8; 32 = the full digest; pixels are covered by each shard's full "
                        "sha256)")
    parser.add_argument("--run-id", default=None,
                        help="name of the run to start or resume (default: from SRC+settings)")
    parser.add_argument("--fidelity", choices=("exact", "pixels"), default="exact",
                        help="exact (default): every object restores to its original bytes "
                        "(rasters as pixels plus a recipe that rebuilds their file, checked "
                        "before commit; else kept as bytes); pixels: rasters restore as "
                        "identical pixels and metadata in a re-encoded file")
    parser.add_argument("--model-store", metavar="URL", default=None,
                        help="keep the codec's model once in this folder or bucket, named by "
                        "its sha256 and shared by every archive that names it, instead of a "
                        "copy in each archive (read with the same --storage-options)")
    parser.add_argument("--no-verify-shards", dest="verify_shards", action="store_false",
                        help="skip decoding each coded shard before it is written (faster; "
                        "the codecs' exactness is then trusted, not checked)")
    _storage_options_argument(parser)
    _ray_arguments(parser)
    parser.set_defaults(handler=cmd_archive)


def cmd_archive(args: argparse.Namespace) -> int:
    from recarchive.commands.options import archive_settings

    settings = archive_settings(
        codec=args.codec, model=args.model, shard_blocks=args.shard_blocks,
        part_objects=args.part_objects, max_pixels=args.max_pixels,
        object_digest_bytes=args.object_digest_bytes, fidelity=args.fidelity,
        verify_shards=args.verify_shards)
    if args.ray_address:
        from recarchive.commands.ray import archive_ray_command

        return archive_ray_command(args.src, args.dst, settings, run_id=args.run_id,
                                   model_store=args.model_store,
                                   storage_options=args.storage_options, as_json=args.json,
                                   **_ray_options(args))
    from recarchive.commands.archive import archive_command

    return archive_command(args.src, args.dst, settings, run_id=args.run_id,
                           model_store=args.model_store,
                           storage_options=args.storage_options, as_json=args.json)


def add_restore_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("restore", help="restore objects of ARCHIVE into DST",
                                 description="Restore objects (all by default) into DST, "
                                 "reading only the shards they need.")
    parser.add_argument("archive")
    parser.add_argument("dst")
    parser.add_argument("--shards", default=None,
                        help="objects whose data begins in these shards, e.g. 0,3-5")
    parser.add_argument("--objects", metavar="GLOB", default=None,
                        help="the object with this key, or those whose key matches GLOB (* "
                        "also matches /)")
    parser.add_argument("--rename-unsafe", action="store_true",
                        help="into a local folder, write keys it cannot hold (., .., //, a "
                        "trailing /, a file x beside x/y) under safe, reported names instead "
                        "of refusing them")
    _storage_options_argument(parser)
    _ray_arguments(parser)
    parser.set_defaults(handler=cmd_restore)


def cmd_restore(args: argparse.Namespace) -> int:
    if args.ray_address:
        from recarchive.commands.ray import restore_ray_command

        return restore_ray_command(args.archive, args.dst, shards=args.shards,
                                   objects=args.objects, storage_options=args.storage_options,
                                   rename_unsafe=args.rename_unsafe, as_json=args.json,
                                   **_ray_options(args))
    from recarchive.commands.archive import restore_command

    return restore_command(args.archive, args.dst, shards=args.shards, objects=args.objects,
                           storage_options=args.storage_options,
                           rename_unsafe=args.rename_unsafe, as_json=args.json)


def add_verify_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("verify", help="decode and check every object of ARCHIVE")
    parser.add_argument("archive")
    _storage_options_argument(parser)
    parser.set_defaults(handler=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    from recarchive.commands.archive import verify_command

    return verify_command(args.archive, storage_options=args.storage_options,
                          as_json=args.json)


def add_repair_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "repair", help="put back a damaged or missing manifest of ARCHIVE",
        description="If the manifest is missing or damaged, put back the copy its writer "
        "committed, or rebuild it from the parts' records whose checksums hold; says what it "
        "could not vouch for.")
    parser.add_argument("archive")
    parser.add_argument("--run-id", default=None,
                        help="the run to repair, where the archive folder holds several")
    _storage_options_argument(parser)
    parser.set_defaults(handler=cmd_repair)


def cmd_repair(args: argparse.Namespace) -> int:
    from recarchive.commands.archive import repair_command

    return repair_command(args.archive, run_id=args.run_id,
                          storage_options=args.storage_options, as_json=args.json)


def add_ls_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("ls", help="list the objects of ARCHIVE")
    parser.add_argument("archive")
    parser.add_argument("--objects", metavar="GLOB", default=None)
    _storage_options_argument(parser)
    parser.set_defaults(handler=cmd_ls)


def cmd_ls(args: argparse.Namespace) -> int:
    from recarchive.commands.archive import ls_command

    return ls_command(args.archive, objects=args.objects, storage_options=args.storage_options,
                      as_json=args.json)


def add_report_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "report", help="compression report of ARCHIVE, or of two archives side by side",
        description="Per dataset, codec and shard: sizes, bits/dim, ratio, time, a histogram "
        "of bits/dim per image, and classical codecs on a sample of the same images.")
    parser.add_argument("archive")
    parser.add_argument("archive_b", nargs="?", default=None,
                        help="a second archive (e.g. the same dataset, another codec or model)")
    parser.add_argument("--html", metavar="FILE", default=None,
                        help="also write the report as one self-contained HTML page")
    parser.add_argument("--baselines", metavar="N", type=positive_int, default=None,
                        help="restore N rasters per dataset and measure PNG, WebP, JPEG-XL "
                        "and zstd on them")
    _storage_options_argument(parser)
    parser.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from recarchive.commands.report import report_command

    return report_command(args.archive, args.archive_b, as_json=args.json, html=args.html,
                          baselines=args.baselines, storage_options=args.storage_options)


# --- entry point ---------------------------------------------------------------------------

SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    add_bench_parser,
    add_train_parser,
    add_archive_parser,
    add_restore_parser,
    add_verify_parser,
    add_repair_parser,
    add_ls_parser,
    add_report_parser,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Exact neural lossless archival of image datasets.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_parser in SUBCOMMANDS:
        add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: sys.argv[1:]), run the command, and return its exit code;
    expected failures become one line on stderr rather than a traceback."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error (or --help / --version)
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    try:
        return args.handler(args)
    except BrokenPipeError:
        # the reader went away (`recarchive ls ARCHIVE | head`): stop quietly, as ls does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (ValueError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        from recarchive.storage.access import credentials_problem  # down; keeps --help light

        problem = credentials_problem(exc)
        if problem is None:
            raise
        print(f"{PROG}: error: {problem}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def exit_with(code: int) -> NoReturn:
    """End a command's process with `code`, once its output is flushed, without interpreter
    teardown. Arrow's native thread pools can abort the process in their destructors at
    teardown ("terminate called without an active exception", exit 134; apache/arrow#34314),
    about one run in ten on a loaded machine, after the command itself had succeeded. Every
    file a command writes is closed before it returns."""
    with contextlib.suppress(BrokenPipeError, ValueError):  # a reader that went away
        sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def entry() -> NoReturn:
    """The `recarchive` command."""
    exit_with(main())


if __name__ == "__main__":
    entry()
