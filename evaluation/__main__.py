"""Command line for the evaluation package: `python -m evaluation SUBCOMMAND --help`.

Each subcommand calls one library function: list-embedders -> embedders.available_embedders,
embed -> embedding.embed_directory, fad -> compare.distance_scores, clap-score ->
clap_score.clap_score, memorization -> memorization.memorization_report, compare -> compare.compare,
tempo -> tempo.tempo_adherence (share of clips whose estimated BPM matches the BPM in their prompt).
Training the bundled CLAP is `python -m evaluation.train_clap`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _embedder_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("embedding")
    group.add_argument(
        "--embedder",
        default="clap-bundled",
        help="registry name: clap-bundled (offline default), mel-stats (no weights), clap-laion (Hub), "
        "vggish / pann / encodec (need the frechet-audio-distance extra). Default: %(default)s",
    )
    group.add_argument(
        "--embedder-checkpoint",
        default=None,
        help="weights for the embedder: a clap-bundled folder (default checkpoints/clap-bundled) or a "
        "clap-laion Hub id / folder (default laion/larger_clap_music)",
    )
    group.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="clips embedded per forward pass (default %(default)s)",
    )
    group.add_argument(
        "--cache-dir",
        default=None,
        help="embedding cache folder (default $EVALUATION_CACHE_DIR or ~/.cache/diffusion-music-studio/embeddings); "
        "entries are keyed by file content hash + embedder + version",
    )
    group.add_argument(
        "--no-cache", action="store_true", help="neither read nor write the embedding cache"
    )
    group.add_argument(
        "--skip-bad",
        action="store_true",
        help="warn about and skip unreadable or silent files instead of stopping at the first one",
    )
    group.add_argument(
        "--device", default="cpu", help="torch device for the embedder (default %(default)s)"
    )
    group.add_argument("--quiet", action="store_true", help="no progress bars")
    return parent


def _load_embedder(args: argparse.Namespace):
    from evaluation.embedders import get_embedder

    kwargs: dict = {"batch_size": args.batch_size, "device": args.device}
    if args.embedder_checkpoint:
        kwargs["checkpoint" if args.embedder == "clap-bundled" else "model_id"] = (
            args.embedder_checkpoint
        )
    return get_embedder(args.embedder, **kwargs)


def _cache(args: argparse.Namespace):
    from evaluation.cache import EmbeddingCache

    return None if args.no_cache else EmbeddingCache(args.cache_dir)


def _embed(args: argparse.Namespace, embedder, directory: str, min_clips: int = 2):
    from evaluation.embedding import embed_directory

    return embed_directory(
        embedder,
        directory,
        _cache(args),
        args.batch_size,
        "skip" if args.skip_bad else "raise",
        not args.quiet,
        min_clips,
    )


def _emit(result: dict, json_path: str | None) -> None:
    text = json.dumps(result, indent=2, allow_nan=False)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(text + "\n")
        print(f"wrote {json_path}", file=sys.stderr)
    print(text)


def cmd_list_embedders(args: argparse.Namespace) -> None:
    from evaluation.embedders import available_embedders

    for name, line in available_embedders().items():
        print(f"{name:14s} {line}")


def cmd_embed(args: argparse.Namespace) -> None:
    embedder = _load_embedder(args)
    result = _embed(args, embedder, args.directory, min_clips=1)
    if args.out:
        np.savez(
            args.out,
            embeddings=result.embeddings,
            files=np.array(result.names()),
            durations_s=result.durations_s,
        )
        print(f"wrote {args.out}", file=sys.stderr)
    print(
        json.dumps(
            {"embedder": result.embedder, "set": result.summary(), "cache_hits": result.cache_hits},
            indent=2,
        )
    )


def cmd_fad(args: argparse.Namespace) -> None:
    from evaluation.compare import distance_scores

    embedder = _load_embedder(args)
    reference, evaluated = (
        _embed(args, embedder, args.reference),
        _embed(args, embedder, args.evaluated),
    )
    scores = distance_scores(reference, evaluated, args.bootstrap, args.seed)
    if not args.per_clip:
        scores.pop("per_clip")
    _emit(
        {
            "embedder": embedder.describe(),
            "reference": reference.summary(),
            "evaluated": evaluated.summary(),
            **scores,
        },
        args.json,
    )


def cmd_clap_score(args: argparse.Namespace) -> None:
    from evaluation.clap_score import clap_score, find_caption_file, read_captions

    embedder = _load_embedder(args)
    captions_path = args.captions or find_caption_file(args.directory)
    if captions_path is None:
        raise SystemExit(
            f"no metadata.jsonl in {args.directory}; pass --captions FILE (.jsonl or .csv)"
        )
    captions = read_captions(captions_path, args.file_column, args.text_column)
    audio = _embed(args, embedder, args.directory)
    result = clap_score(
        embedder, audio, captions, args.allow_unpaired, args.bootstrap, args.seed
    ).to_dict()
    if not args.per_clip:
        result.pop("per_clip")
    _emit(result, args.json)


def cmd_memorization(args: argparse.Namespace) -> None:
    from evaluation.memorization import CopyDetector, memorization_report

    embedder = _load_embedder(args)
    generated, train = _embed(args, embedder, args.generated), _embed(args, embedder, args.train)
    baseline = _embed(args, embedder, args.baseline) if args.baseline else None
    detector = CopyDetector(min_overlap_s=args.min_overlap)
    result = memorization_report(
        generated, train, baseline, detector, _cache(args), args.fpr, args.top_k, not args.quiet
    ).to_dict()
    if not args.per_clip:
        result.pop("per_clip")
    _emit(result, args.json)


def cmd_compare(args: argparse.Namespace) -> None:
    from evaluation.compare import compare

    embedder = _load_embedder(args)
    report = compare(
        args.candidates,
        args.reference,
        args.train,
        args.out,
        embedder,
        num_clips=args.num_clips,
        seed=args.seed,
        num_inference_steps=args.steps,
        seconds_total=args.seconds,
        n_bootstrap=args.bootstrap,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        on_error="skip" if args.skip_bad else "raise",
        device=args.device,
        memorization_fpr=args.fpr,
        max_players=args.players,
        progress=not args.quiet,
        jobs=args.jobs,
    )
    for kind, path in report["files"].items():
        print(f"{kind}: {path}")


def parse_where(pairs: list[str] | None) -> dict[str, str]:
    """`["subset=drums", "kind=break"]` -> `{"subset": "drums", "kind": "break"}`."""
    where = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--where takes KEY=VALUE, got {pair!r}")
        where[key] = value
    return where


def cmd_tempo(args: argparse.Namespace) -> None:
    from evaluation.tempo import tempo_adherence

    result = tempo_adherence(
        args.directory,
        args.tolerance,
        args.bootstrap,
        args.seed,
        not args.quiet,
        "skip" if args.skip_bad else "raise",
        where=parse_where(args.where),
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    print(result.summary())
    if result.clips_checked == 0:
        raise SystemExit(f"no prompt in {args.directory}/metadata.jsonl names a BPM")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    common = _embedder_options()

    p = sub.add_parser("list-embedders", help="show the embedder registry and what each needs")
    p.set_defaults(func=cmd_list_embedders)

    p = sub.add_parser(
        "embed", parents=[common], help="embed every audio file in a folder (fills the cache)"
    )
    p.add_argument("directory", help="folder of audio files (searched recursively)")
    p.add_argument(
        "--out", default=None, help="also save embeddings, file names and durations to this .npz"
    )
    p.set_defaults(func=cmd_embed)

    stats = argparse.ArgumentParser(add_help=False)
    stats.add_argument(
        "--bootstrap",
        type=int,
        default=500,
        help="bootstrap resamples for 95%% intervals (default %(default)s)",
    )
    stats.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed for resampling and FAD-inf subsets (default %(default)s)",
    )
    stats.add_argument("--json", default=None, help="also write the result to this JSON file")
    stats.add_argument(
        "--per-clip", action="store_true", help="include one row per clip in the output"
    )

    p = sub.add_parser(
        "fad",
        parents=[common, stats],
        help="FAD, FAD-inf and KAD between two folders, with intervals",
    )
    p.add_argument("reference", help="folder of reference (real) audio")
    p.add_argument("evaluated", help="folder of audio to judge")
    p.set_defaults(func=cmd_fad)

    p = sub.add_parser(
        "clap-score",
        parents=[common, stats],
        help="caption/audio agreement (text-audio embedders only)",
    )
    p.add_argument(
        "directory",
        help="folder of audio; captions from its metadata.jsonl unless --captions is given",
    )
    p.add_argument(
        "--captions", default=None, help="metadata.jsonl or CSV pairing file names to captions"
    )
    p.add_argument(
        "--file-column",
        default="file_name",
        help="column/key holding the file name, relative to the caption file's folder (default %(default)s)",
    )
    p.add_argument(
        "--text-column", default="text", help="column/key holding the caption (default %(default)s)"
    )
    p.add_argument(
        "--allow-unpaired",
        action="store_true",
        help="score captioned clips and warn about the rest instead of failing",
    )
    p.set_defaults(func=cmd_clap_score)

    mem = argparse.ArgumentParser(add_help=False)
    mem.add_argument(
        "--fpr",
        type=float,
        default=0.01,
        help="false-positive rate on the baseline that sets the thresholds (default %(default)s)",
    )
    mem.add_argument(
        "--min-overlap",
        type=float,
        default=3.0,
        help="shortest overlap in seconds the copy detector accepts (default %(default)s)",
    )

    p = sub.add_parser(
        "memorization",
        parents=[common, mem],
        help="nearest training clip of every generated clip, copy detection",
    )
    p.add_argument("generated", help="folder of generated audio")
    p.add_argument("--train", required=True, help="folder of training audio")
    p.add_argument(
        "--baseline",
        default=None,
        help="held-out real audio (never trained on) to calibrate thresholds; default: train against itself",
    )
    p.add_argument(
        "--top-k", type=int, default=10, help="strongest matches listed (default %(default)s)"
    )
    p.add_argument("--json", default=None, help="also write the result to this JSON file")
    p.add_argument("--per-clip", action="store_true", help="include one row per generated clip")
    p.set_defaults(func=cmd_memorization)

    p = sub.add_parser(
        "compare",
        parents=[common, mem],
        help="full report over checkpoints and/or folders of audio",
    )
    p.add_argument(
        "candidates",
        nargs="+",
        help="checkpoint folders / Hub ids (N clips are generated with fixed seeds) or folders of audio (used as is)",
    )
    p.add_argument(
        "--reference",
        required=True,
        help="folder of held-out real audio (also the memorization baseline)",
    )
    p.add_argument(
        "--train", default=None, help="folder of training audio for the memorization report"
    )
    p.add_argument(
        "--out",
        default="outputs/evaluation",
        help="report folder: report.json, report.md, report.html (default %(default)s)",
    )
    p.add_argument(
        "--num-clips",
        type=int,
        default=64,
        help="clips generated per checkpoint (default %(default)s)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="worker processes generating clips, one torch thread each (clips are identical "
        "whatever the count; default %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="clip i is generated with seed SEED+i; also seeds resampling (default %(default)s)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=50,
        help="inference steps when generating (default %(default)s)",
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=5.0,
        help="length in seconds of every generated clip; unconditional checkpoints grow windows to it (default %(default)s)",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=500,
        help="bootstrap resamples for intervals and paired tests (default %(default)s)",
    )
    p.add_argument(
        "--players",
        type=int,
        default=6,
        help="audio players per candidate in the HTML report (default %(default)s)",
    )
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "tempo",
        help="share of clips whose estimated tempo matches the BPM named in their prompt",
    )
    p.add_argument(
        "directory",
        help="folder of audio with a metadata.jsonl (file_name, text); prompts without a BPM are skipped",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.08,
        help="relative tolerance: 0.08 = within 8%% of the asked BPM, its half or double (default %(default)s)",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        help="bootstrap resamples for the 95%% interval of the share (default %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed for the bootstrap and the chance-baseline permutations (default %(default)s)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="also write the full result (with per-clip rows) to this JSON file",
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="warn about and skip unreadable or silent files instead of stopping at the first one",
    )
    p.add_argument(
        "--where",
        action="append",
        metavar="KEY=VALUE",
        help="check only clips whose metadata row (or, for generated clips, the reference row that "
        "prompted them) has KEY=VALUE, e.g. --where subset=drums; repeatable",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_tempo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
