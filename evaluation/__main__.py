"""Command line for the evaluation package: `python -m evaluation SUBCOMMAND --help`.

Each subcommand calls one library function: list-embedders -> embedders.available_embedders,
embed -> embedding.embed_directory, stats -> reference_stats.save_reference_stats,
fad -> compare.distance_scores (FAD, FAD-inf, KAD, MAD, worst clips), clap-score ->
clap_score.clap_score, memorization -> memorization.memorization_report, compare -> compare.compare,
tempo -> tempo.tempo_adherence (share of clips whose estimated BPM matches the BPM in their prompt),
control -> control.control_accuracy (share of clips that hit the tempo and the key their prompt names).
Training the bundled CLAP is `python -m evaluation.train_clap`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from music.audiofolder import metadata_file, read_captions


class UserError(Exception):
    """A mistake in the command line or its inputs: printed as one line, exit status 2."""


class EvaluationArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (not usage + error) and exits with status 2."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _bounded(text, int, 1, None, "an integer >= 1")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _bounded(text, int, 0, None, "an integer >= 0")


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    return _bounded(text, float, 0.0, None, "a number >= 0")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = _bounded(text, float, 0.0, None, "a number > 0")
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number > 0")
    return value


def probability(text: str) -> float:
    """argparse type: a rate strictly between 0 and 1 (0.01 = 1%)."""
    value = _bounded(text, float, 0.0, 1.0, "a rate between 0 and 1, e.g. 0.01 for 1%")
    if value in (0.0, 1.0):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a rate strictly between 0 and 1, e.g. 0.01 for 1%"
        )
    return value


def _bounded(text: str, kind: type, low: float | None, high: float | None, wanted: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}") from None
    if (
        (kind is float and not np.isfinite(value))
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}")
    return value


def check_folder(path: str, what: str) -> None:
    """Refuse a missing folder before any model is loaded."""
    if not Path(path).exists():
        raise UserError(f"{what} folder not found: {path}")
    if not Path(path).is_dir():
        raise UserError(f"{what} is not a folder: {path}")


def check_writable(path: str | None, what: str) -> None:
    """Refuse an output path that cannot be written, before any work is done (no lost work)."""
    from evaluation import distributed

    if not path or not distributed.is_main_process():  # only process 0 writes
        return
    target = Path(path)
    if target.is_dir():
        raise UserError(f"{what} {path} is a folder; give a file name")
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        existed = target.exists()
        with open(target, "a"):
            pass
        if not existed:
            target.unlink()
    except OSError as error:
        raise UserError(
            f"cannot write {what} {path} ({error.strerror or error}); choose a writable path"
        ) from error


def check_writable_folder(path: str, what: str) -> None:
    """Refuse an output folder that cannot be created or written."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise UserError(
            f"cannot write {what} {path} ({error.strerror or error}); choose a writable folder"
        ) from error


def check_metadata_text(folder: str) -> None:
    """A folder's metadata.jsonl must be UTF-8 text (the error otherwise names neither file nor line)."""
    metadata = Path(folder) / "metadata.jsonl"
    if not metadata.is_file():
        return
    try:
        metadata.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(
            f"{metadata} is not UTF-8 text (byte {error.start}); save it as UTF-8 JSON lines"
        ) from error


def check_embedder_name(name: str) -> None:
    from evaluation.embedders import EMBEDDERS

    if name not in EMBEDDERS:
        raise UserError(
            f"unknown embedder {name!r}; choose one of {', '.join(sorted(EMBEDDERS))} "
            "(python -m evaluation list-embedders)"
        )


def _embedder_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("embedding")
    group.add_argument(
        "--embedder",
        default="clap-bundled",
        help="registry name (python -m evaluation list-embedders shows all, with what each needs): "
        "clap-bundled (offline default), mel-stats (no weights), vggish, pann-cnn14, "
        "pann-cnn14-16k, openl3, clap-laion, clap-laion-music, mert-v1-95m, encodec-24khz. "
        "Default: %(default)s",
    )
    group.add_argument(
        "--embedder-checkpoint",
        default=None,
        help="weights for the embedder instead of its default: a clap-bundled folder, a weights "
        "file (vggish, pann-cnn14, openl3) or a Hub id / local folder (clap-laion, "
        "clap-laion-music, mert-v1-95m, encodec-24khz)",
    )
    group.add_argument(
        "--batch-size",
        type=positive_int,
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


def _debug_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of an error instead of one line",
    )
    return parent


def _load_embedder(args: argparse.Namespace):
    from evaluation.embedders import EMBEDDERS, get_embedder

    check_embedder_name(args.embedder)
    from evaluation.distributed import device_for_rank

    kwargs: dict = {"batch_size": args.batch_size, "device": device_for_rank(args.device)}
    if args.embedder_checkpoint:
        kwargs[EMBEDDERS[args.embedder].checkpoint_argument] = args.embedder_checkpoint
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
    from evaluation import distributed

    if not distributed.is_main_process():
        return
    text = json.dumps(result, indent=2, allow_nan=False)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(text + "\n")
        print(f"wrote {json_path}", file=sys.stderr)
    print(text)


def cmd_list_embedders(args: argparse.Namespace) -> None:
    from evaluation.embedders import embedder_table

    rows = embedder_table()
    if args.json_output:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        window = "whole clip" if row["window_s"] is None else f"{row['window_s']:g} s windows"
        print(
            f"{row['name']:17s} {'usable now' if row['usable_now'] else 'NOT usable now'}: "
            f"{row['needs']}\n{'':17s} {row['description']}; {row['sample_rate_hz']} Hz, {window}; "
            f"{row['pooling']}\n{'':17s} weights: {row['weight_source']}"
        )


def cmd_embed(args: argparse.Namespace) -> None:
    check_folder(args.directory, "audio")
    check_writable(args.out, "--out")
    embedder = _load_embedder(args)
    result = _embed(args, embedder, args.directory, min_clips=1)
    if not is_main_process():
        return
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

    check_reference(args.reference)
    check_folder(args.evaluated, "evaluated")
    check_writable(args.json, "--json")
    embedder = _load_embedder(args)
    reference = _reference(args, embedder)
    evaluated = _embed(args, embedder, args.evaluated)
    if args.num_clips is not None:
        from evaluation.compare import subsample

        if args.num_clips > len(evaluated):
            raise UserError(f"--num-clips {args.num_clips} is more than the {len(evaluated)} clips in {args.evaluated}")
        evaluated = subsample(evaluated, args.num_clips, args.seed)
    scores = distance_scores(reference, evaluated, args.bootstrap, args.seed)
    scores["comparability"] = comparability(embedder.name, len(reference), len(evaluated), scores)
    if args.frame_level:
        from evaluation.compare import frame_level_fad
        from evaluation.reference_stats import ReferenceStats

        if isinstance(reference, ReferenceStats):
            raise UserError("--frame-level needs the reference audio folder, not a .npz")
        try:
            scores["fad_frame_level"] = frame_level_fad(embedder, reference, evaluated)
        except NotImplementedError as error:
            raise UserError(str(error)) from error
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


def comparability(embedder_name: str, num_reference: int, num_evaluated: int, scores: dict) -> dict:
    """What another `fad` result must share before its numbers can be compared with these."""
    from evaluation.compare import REPORT_METRICS, metric_visibility

    clusters = (scores.get("mad") or {}).get("num_clusters")
    visibility = metric_visibility(embedder_name, num_evaluated)
    return {
        "num_evaluated": num_evaluated,
        "num_reference": num_reference,
        "mad_clusters": clusters,
        "statement": (
            f"FAD, KAD and MAD depend on N: compare these numbers only with results at N={num_evaluated} "
            f"evaluated clips against the same {num_reference} reference clips"
            + (f" and MAD with {clusters} clusters" if clusters else "")
            + "; for another N pass --num-clips, or use `python -m evaluation compare`, which puts every "
            "set on equal N and shows the real-vs-real floor"
        ),
        "not_trusted_at_this_n": {
            m: v["note"].replace("withheld", "not trusted", 1)
            for m, v in visibility.items()
            if m in REPORT_METRICS[:4] and not v["shown"]
        },
    }


def check_reference(path: str) -> None:
    """A reference is a folder of audio or a statistics file from `python -m evaluation stats`."""
    from evaluation.reference_stats import is_stats_file

    if is_stats_file(path):
        if not Path(path).is_file():
            raise UserError(f"reference statistics file not found: {path}")
        return
    check_folder(path, "reference")


def _reference(args: argparse.Namespace, embedder):
    """The embedded reference folder, or the statistics file checked against `embedder`."""
    from evaluation.reference_stats import is_stats_file, load_reference_stats

    if not is_stats_file(args.reference):
        return _embed(args, embedder, args.reference)
    reference = load_reference_stats(args.reference)
    reference.check_embedder(embedder.describe())
    return reference


def cmd_stats(args: argparse.Namespace) -> None:
    from evaluation.reference_stats import (
        reference_stats_from_set,
        save_reference_stats,
    )

    check_folder(args.directory, "reference")
    check_metadata_text(args.directory)
    check_writable(args.out, "--out")
    if not args.out.lower().endswith(".npz"):
        raise UserError(f"--out must end in .npz, got {args.out}")
    caption_file = metadata_file(args.directory)
    captions = None
    if caption_file is not None:
        try:
            captions = read_captions(caption_file)
        except ValueError as error:
            print(f"captions not stored ({error})", file=sys.stderr)
    embedder = _load_embedder(args)
    reference = _embed(args, embedder, args.directory)
    stats = reference_stats_from_set(reference, captions, keep_embeddings=not args.stats_only)
    if not is_main_process():
        return
    save_reference_stats(stats, args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    print(json.dumps({"embedder": reference.embedder, "set": stats.summary()}, indent=2))


def cmd_clap_score(args: argparse.Namespace) -> None:
    from evaluation.clap_score import clap_score

    check_folder(args.directory, "audio")
    check_writable(args.json, "--json")
    captions_path = args.captions or metadata_file(args.directory)
    if captions_path is None:
        raise UserError(
            f"no metadata.jsonl in {args.directory}; pass --captions FILE (.jsonl or .csv)"
        )
    captions = read_captions(captions_path, args.file_column, args.text_column)
    embedder = _load_embedder(args)
    if not embedder.supports_text:
        raise UserError(
            f"embedder {args.embedder!r} has no text tower; clap-score needs a text-audio embedder "
            "such as clap-bundled or clap-laion"
        )
    audio = _embed(args, embedder, args.directory)
    result = clap_score(
        embedder, audio, captions, args.allow_unpaired, args.bootstrap, args.seed
    ).to_dict()
    if not args.per_clip:
        result.pop("per_clip")
    _emit(result, args.json)


def cmd_memorization(args: argparse.Namespace) -> None:
    from evaluation.memorization import CopyDetector, memorization_report

    check_folder(args.generated, "generated")
    check_folder(args.train, "training")
    if args.baseline:
        check_folder(args.baseline, "baseline")
    if args.cross_validate < 0 or args.cross_validate == 1:
        raise UserError(f"--cross-validate takes 2 or more folds (0: off), got {args.cross_validate}")
    check_writable(args.json, "--json")
    embedder = _load_embedder(args)
    generated, train = _embed(args, embedder, args.generated), _embed(args, embedder, args.train)
    baseline = _embed(args, embedder, args.baseline) if args.baseline else None
    detector = CopyDetector(min_overlap_s=args.min_overlap, landmarks=args.landmarks)
    result = memorization_report(
        generated, train, baseline, detector, _cache(args), args.fpr, args.top_k, not args.quiet,
        tempo_normalise=args.tempo_normalise, cross_validate=args.cross_validate,
        melody_view=not args.no_melody_view,
    ).to_dict()
    if not args.per_clip:
        result.pop("per_clip")
    _emit(result, args.json)


def cmd_compare(args: argparse.Namespace) -> None:
    from evaluation.compare import compare

    check_reference(args.reference)
    if args.train:
        check_folder(args.train, "training")
    if Path(args.reference).is_dir():
        check_metadata_text(args.reference)
    check_writable_folder(args.out, "report folder --out")
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
        memorization_tempo_normalise=args.tempo_normalise,
        memorization_melody_view=not args.no_melody_view,
        max_players=args.players,
        progress=not args.quiet,
        jobs=args.jobs,
        eval_clips=args.eval_clips,
    )
    for kind, path in report.get("files", {}).items():
        print(f"{kind}: {path}")


def parse_where(pairs: list[str] | None) -> dict[str, str]:
    """`["subset=drums", "kind=break"]` -> `{"subset": "drums", "kind": "break"}`."""
    where = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--where takes KEY=VALUE, got {pair!r}")
        where[key] = value
    return where


def cmd_tempo(args: argparse.Namespace) -> None:
    from evaluation.tempo import tempo_adherence

    check_folder(args.directory, "audio")
    check_metadata_text(args.directory)
    check_writable(args.out, "--out")
    result = tempo_adherence(
        args.directory,
        args.tolerance,
        args.bootstrap,
        args.seed,
        not args.quiet,
        "skip" if args.skip_bad else "raise",
        where=parse_where(args.where),
    )
    if args.out and is_main_process():
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    print(result.summary())
    if result.clips_checked == 0:
        raise UserError(f"no prompt in {args.directory}/metadata.jsonl names a BPM")


def cmd_control(args: argparse.Namespace) -> None:
    from evaluation.control import control_accuracy, format_summary

    check_folder(args.directory, "audio")
    check_metadata_text(args.directory)
    check_writable(args.out, "--out")
    result = control_accuracy(args.directory, args.tolerance, not args.quiet)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    print(format_summary(result))
    if not result["tempo"]["clips"] and not result["key"]["clips"]:
        raise UserError(f"no prompt in {args.directory}/metadata.jsonl names a tempo or a key")


def build_parser() -> argparse.ArgumentParser:
    parser = EvaluationArgumentParser(
        prog="python -m evaluation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    debug = _debug_option()
    common = _embedder_options()

    p = sub.add_parser(
        "list-embedders",
        parents=[debug],
        help="show the embedder registry, what each needs and whether it is usable now",
    )
    p.add_argument(
        "--json", dest="json_output", action="store_true", help="print the table as JSON"
    )
    p.set_defaults(func=cmd_list_embedders)

    p = sub.add_parser(
        "embed", parents=[common, debug], help="embed every audio file in a folder (fills the cache)"
    )
    p.add_argument("directory", help="folder of audio files (searched recursively)")
    p.add_argument(
        "--out", default=None, help="also save embeddings, file names and durations to this .npz"
    )
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser(
        "stats",
        parents=[common, debug],
        help="embed a reference folder once and write its statistics (mean, covariance, N, "
        "protocol) to a .npz that fad and compare accept in place of the folder",
    )
    p.add_argument("directory", help="folder of reference audio (searched recursively)")
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.add_argument(
        "--stats-only",
        action="store_true",
        help="store only mean, covariance and N (fadtk style, smallest file); without the clip "
        "embeddings, KAD, MAD and reference percentiles cannot be computed against the file",
    )
    p.set_defaults(func=cmd_stats)

    stats = argparse.ArgumentParser(add_help=False)
    stats.add_argument(
        "--bootstrap",
        type=positive_int,
        default=500,
        help="bootstrap resamples for 95%% intervals (default %(default)s)",
    )
    stats.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed for resampling and FAD-inf subsets (default %(default)s)",
    )
    stats.add_argument("--json", default=None, help="also write the result to this JSON file")
    stats.add_argument(
        "--per-clip", action="store_true", help="include one row per clip in the output"
    )

    p = sub.add_parser(
        "fad",
        parents=[common, stats, debug],
        help="FAD, FAD-inf, KAD and MAD between two folders, with intervals, and the worst clips",
    )
    p.add_argument(
        "reference",
        help="folder of reference (real) audio, or a .npz from `python -m evaluation stats` "
        "(made with the same embedder)",
    )
    p.add_argument("evaluated", help="folder of audio to judge")
    p.add_argument(
        "--num-clips",
        type=positive_int,
        default=None,
        help="score a seeded draw of this many evaluated clips (--seed), to match the N of a result "
        "you compare with (default: all clips)",
    )
    p.add_argument(
        "--frame-level",
        action="store_true",
        help="also report FAD fitted to every frame embedding (vggish: each 0.96 s example), the "
        "protocol of Google's FAD and published VGGish numbers; needs a reference folder",
    )
    p.set_defaults(func=cmd_fad)

    p = sub.add_parser(
        "clap-score",
        parents=[common, stats, debug],
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
        type=probability,
        default=0.01,
        help="false-positive rate on the baseline that sets the thresholds (default %(default)s)",
    )
    mem.add_argument(
        "--tempo-normalise",
        action="store_true",
        help="put every clip at one tempo before matching (the `bpm` of each folder's metadata.jsonl, else "
        "estimated): for tempo-normalised models, whose clips come out at another tempo than the training clip's",
    )
    mem.add_argument(
        "--min-overlap",
        type=non_negative_float,
        default=3.0,
        help="shortest overlap in seconds the copy detector accepts (default %(default)s)",
    )
    mem.add_argument(
        "--no-melody-view",
        action="store_true",
        help="for unpitched training material (drums, percussion): decide on the copy score and the verified "
        "residual SNR alone, not on the melody score (transposition-invariant chroma), which on drum kits "
        "reads the kits' timbre, not a melody: on the drums benchmark it added false positives and no copy "
        "(README); the melody score is still reported. Keep the view for anything with a melody, bass line "
        "or chords",
    )

    p = sub.add_parser(
        "memorization",
        parents=[common, mem, debug],
        help="share of generated clips that copy a training clip (offset, rotation, pitch, tempo, gain, noise, "
        "low-pass, mixing; melody in any key), calibrated on held-out clips",
    )
    p.add_argument("generated", help="folder of generated audio")
    p.add_argument(
        "--landmarks",
        action="store_true",
        help="also score clips by landmark fingerprints (spectrogram peak pairs agreeing on one offset): finds a "
        "copy mixed under louder material; its score joins the union with its own threshold. Measured on fresh "
        "copies and a fresh render (README, 'The landmark view next to copy-8'): pitched mix copies 96%% found, "
        "but held-out false positives 1.0%% -> 1.25%%; drums mix copies under 90%%. About 1 s more per clip",
    )
    p.add_argument(
        "--cross-validate",
        type=int,
        default=0,
        metavar="FOLDS",
        help="fit the copy thresholds at the nominal rate that FOLDS-fold cross-validation on the baseline finds "
        "keeps clips outside it at --fpr (a threshold fitted at 1%% on a few hundred clips flags new clips "
        "1.2-1.8%% of the time); folds by the metadata's `group`; the baseline less one fold must hold at least "
        "2/--fpr clips (default 0: off; 5 is the benchmark's)",
    )
    p.add_argument("--train", required=True, help="folder of training audio")
    p.add_argument(
        "--baseline",
        default=None,
        help="held-out real audio (never trained on) to calibrate thresholds; default: train against itself",
    )
    p.add_argument(
        "--top-k", type=positive_int, default=10, help="strongest matches listed (default %(default)s)"
    )
    p.add_argument("--json", default=None, help="also write the result to this JSON file")
    p.add_argument("--per-clip", action="store_true", help="include one row per generated clip")
    p.set_defaults(func=cmd_memorization)

    p = sub.add_parser(
        "compare",
        parents=[common, mem, debug],
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
        help="folder of held-out real audio (also the memorization baseline), or a .npz from "
        "`python -m evaluation stats` (then memorization is calibrated on --train against itself)",
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
        type=positive_int,
        default=64,
        help="clips generated per checkpoint (default %(default)s)",
    )
    p.add_argument(
        "--eval-clips",
        type=positive_int,
        default=None,
        help="N: clips every set is scored at (larger sets: a seeded draw of N; a smaller set is "
        "scored alone and left out of every ranking and paired test). Default: the smallest "
        "candidate's clip count",
    )
    p.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        help="worker processes generating clips, one torch thread each (clips are identical "
        "whatever the count; default %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="clip i is generated with seed SEED+i; also seeds resampling (default %(default)s)",
    )
    p.add_argument(
        "--steps",
        type=positive_int,
        default=50,
        help="inference steps when generating (default %(default)s)",
    )
    p.add_argument(
        "--seconds",
        type=positive_float,
        default=5.0,
        help=(
            "length in seconds of every generated clip; unconditional checkpoints grow windows to it "
            "(default %(default)s)"
        ),
    )
    p.add_argument(
        "--bootstrap",
        type=positive_int,
        default=500,
        help="bootstrap resamples for intervals and paired tests (default %(default)s)",
    )
    p.add_argument(
        "--players",
        type=non_negative_int,
        default=6,
        help="audio players per candidate in the HTML report (default %(default)s)",
    )
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "tempo",
        parents=[debug],
        help="share of clips whose estimated tempo matches the BPM named in their prompt",
    )
    p.add_argument(
        "directory",
        help="folder of audio with a metadata.jsonl (file_name, text); prompts without a BPM are skipped",
    )
    p.add_argument(
        "--tolerance",
        type=positive_float,
        default=0.08,
        help="relative tolerance: 0.08 = within 8%% of the asked BPM, its half or double (default %(default)s)",
    )
    p.add_argument(
        "--bootstrap",
        type=positive_int,
        default=1000,
        help="bootstrap resamples for the 95%% interval of the share (default %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=non_negative_int,
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

    p = sub.add_parser(
        "control",
        parents=[debug],
        help="share of clips that hit the tempo and the key named in their prompt (Wilson intervals; "
        "octave and relative-key confusions listed apart)",
    )
    p.add_argument(
        "directory",
        help="folder of audio with a metadata.jsonl (file_name, text); prompts naming neither a BPM nor "
        "a key ('in B minor') are skipped",
    )
    p.add_argument(
        "--tolerance",
        type=probability,
        default=0.04,
        help="relative tempo tolerance of a hit: 0.04 = within 4%% of the asked BPM itself (its double "
        "or half count as octave confusions, not hits; default %(default)s)",
    )
    p.add_argument("--out", default=None, help="also write the full result (with per-clip rows) to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_control)
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the input is wrong" rather than "the code is wrong".

    The library raises ValueError (bad values, too few clips, unreadable or silent audio, bad
    metadata), FileNotFoundError / PermissionError (paths), ImportError (an optional package), and
    `EmbedderUnavailableError` / `ModelUnavailableError` (weights that cannot be fetched offline).
    Anything else is a bug and keeps its traceback.
    """
    from evaluation.embedder_base import EmbedderUnavailableError

    errors: list[type[BaseException]] = [
        UserError,
        ValueError,
        FileNotFoundError,
        NotADirectoryError,
        PermissionError,
        ImportError,
        EmbedderUnavailableError,
    ]
    try:
        from models.hub import ModelUnavailableError

        errors.append(ModelUnavailableError)
    except ImportError:
        pass
    return tuple(errors)


def explain(error: BaseException) -> str:
    """One line naming the problem and what to do."""
    from evaluation.audio_io import AudioLoadError

    message = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, AudioLoadError):
        message += "; fix or remove the file, or pass --skip-bad to leave such files out"
    elif isinstance(error, UnicodeDecodeError):
        message = f"a text file is not UTF-8 ({message}); save it as UTF-8"
    return message


def is_main_process() -> bool:
    from evaluation import distributed

    return distributed.is_main_process()


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. User errors print one line to stderr and exit with status 2 (the full
    traceback with --debug); a bug keeps its traceback. Under `accelerate launch` (or torchrun)
    the clips are sharded over the processes and process 0 prints and writes the results."""
    from evaluation import distributed

    args = build_parser().parse_args(argv)
    if distributed.init_from_environment() and not distributed.is_main_process():
        args.quiet = True
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except user_errors() as error:
        if getattr(args, "debug", False):
            raise
        print(f"python -m evaluation {args.command}: error: {explain(error)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
