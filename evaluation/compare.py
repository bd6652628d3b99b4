"""Comparing checkpoints (or folders of clips) against a reference set: FAD, FAD-inf, KAD with
bootstrap intervals, paired tests between neighbours, CLAP score and memorization, plus the
protocol manifest (embedder, sample rate in Hz, N, durations in s, seeds, package versions)."""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import platform
import re
import sys
import warnings
from pathlib import Path

import numpy as np

from evaluation import distributed
from evaluation.bootstrap import bootstrap_ci, paired_bootstrap_test
from evaluation.cache import EmbeddingCache
from evaluation.clap_score import clap_score
from evaluation.control import control_entry
from evaluation.embedder_base import Embedder
from evaluation.embedders import get_embedder
from evaluation.embedding import EmbeddingSet, embed_directory
from evaluation.fad import (
    GaussianStats,
    fad_contributions,
    fad_inf,
    frechet_from_stats,
    gaussian_stats,
    per_clip_scores,
)
from evaluation.features import limit_threads
from evaluation.generate import generate_clips, has_audio, is_checkpoint
from evaluation.kad import kernel_stats
from evaluation.ladder import MEMORIZATION, metric_shown
from evaluation.mad import mad_stats, num_clusters
from evaluation.memorization import (
    CopyDetector,
    check_calibration_size,
    memorization_report,
    min_calibration_clips,
)
from evaluation.reference_stats import ReferenceStats, is_stats_file, load_reference_stats
from music.audiofolder import metadata_file, read_captions, read_rows

EVALUATION_VERSION = "0.1.0"
PACKAGES = (
    "torch",
    "numpy",
    "scipy",
    "torchmetrics",
    "transformers",
    "diffusers",
    "librosa",
    "soundfile",
    "soxr",
)
# every number the report headlines, each checked on the quality ladder (evaluation/ladder.py)
REPORT_METRICS = ("fad", "fad_inf", "kad", "mad", "clap_score", MEMORIZATION)


def package_versions() -> dict[str, str]:
    versions = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "evaluation": EVALUATION_VERSION,
    }
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def distance_scores(
    reference: EmbeddingSet | ReferenceStats,
    evaluated: EmbeddingSet,
    n_bootstrap: int = 500,
    seed: int = 0,
    fad_inf_points: int = 15,
    num_outliers: int = 10,
    clusters: int | None = None,
) -> dict:
    """FAD (+ interval), FAD-inf, KAD and MAD (+ intervals) and per-clip scores, worst first.

    `clusters` fixes MAD's cluster count (compare passes the one set by the common N, so every
    candidate is quantised alike); None uses the mauve-text default for these two sizes.

    `reference` is an embedded folder or `ReferenceStats` from a `.npz`; a `.npz` without
    embeddings gives FAD and FAD-inf only (KAD, MAD and percentiles need the reference clips).
    Intervals resample the evaluated clips with the reference held fixed (see `bootstrap`).
    Runs single-threaded: hundreds of small eigendecompositions are faster that way on a busy CPU.
    """
    with limit_threads(1):
        return _distance_scores(
            reference, evaluated, n_bootstrap, seed, fad_inf_points, num_outliers, clusters
        )


def point_scores(
    reference: EmbeddingSet | ReferenceStats,
    evaluated: np.ndarray,
    clusters: int | None = None,
    seed: int = 0,
    fad_inf_points: int = 15,
) -> dict[str, float | None]:
    """FAD, FAD-inf, KAD and MAD of `evaluated` `[N, dim]` against the reference: point values
    without intervals (the quality-ladder benchmark draws thousands of them). `clusters` fixes
    MAD's k-means cluster count (None: the mauve-text default for these two sizes). KAD, MAD are
    None without reference embeddings, FAD-inf None below 10 clips."""
    with limit_threads(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rank warnings: callers compare at equal N by design
        ref_stats = reference_gaussian(reference)
        ev = np.asarray(evaluated, dtype=np.float64)
        out: dict[str, float | None] = {
            "fad": frechet_from_stats(ref_stats, gaussian_stats(ev)),
            "fad_inf": fad_inf(ref_stats, ev, num_points=fad_inf_points, seed=seed).value if len(ev) >= 10 else None,
            "kad": None,
            "mad": None,
        }
        if reference.embeddings is not None:
            out["kad"] = kernel_stats(reference.embeddings, ev).kad()
            out["mad"] = mad_stats(reference.embeddings, ev, seed=seed, clusters=clusters).mad()
    return out


def memorization_of(
    evaluated: EmbeddingSet,
    train: EmbeddingSet,
    baseline: EmbeddingSet | None,
    cache: EmbeddingCache | None,
    false_positive_rate: float,
    progress: bool = False,
    tempo_normalise: bool = False,
    melody_view: bool = True,
) -> dict:
    """The one call into `evaluation.memorization`: the report as a dict, with `share` (share of `evaluated`
    flagged as copies of `train`) and `flags` (one bool per clip, in `evaluated` order) added for the report
    and the ladder. `melody_view=False`: unpitched material (`evaluation.memorization.deciding_views`)."""
    result = memorization_report(
        evaluated, train, baseline, CopyDetector(), cache, false_positive_rate, progress=progress,
        tempo_normalise=tempo_normalise, melody_view=melody_view,
    ).to_dict()
    result["share"] = float(result["share_above"]["copies"])
    result["flags"] = [bool(row["above_threshold"]) for row in result["per_clip"]]
    return result


def reference_gaussian(reference: EmbeddingSet | ReferenceStats) -> GaussianStats:
    """The reference Gaussian (with its square root), from the file or from the embeddings."""
    if isinstance(reference, ReferenceStats):
        stats = reference.stats
    else:
        stats = gaussian_stats(reference.embeddings, name="reference")
    return stats.with_sqrt()


def _distance_scores(
    reference: EmbeddingSet | ReferenceStats,
    evaluated: EmbeddingSet,
    n_bootstrap: int,
    seed: int,
    fad_inf_points: int,
    num_outliers: int,
    clusters: int | None = None,
) -> dict:
    if isinstance(reference, ReferenceStats):
        reference.check_embedder(evaluated.embedder)
    ref_stats = reference_gaussian(reference)
    ref_embeddings = reference.embeddings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gaussian_stats(
            evaluated.embeddings, name=evaluated.root.name if evaluated.root else "evaluated"
        )
    notes = [str(w.message) for w in caught]
    for note in notes:
        warnings.warn(note, stacklevel=2)
    ev = evaluated.embeddings.astype(np.float64)

    def fad_of(indices: np.ndarray) -> float:
        return frechet_from_stats(ref_stats, gaussian_stats(ev[indices], warn_rank=False))

    fad_result = bootstrap_ci(fad_of, len(ev), n_bootstrap, seed=seed)
    out = {
        "num_reference": len(reference),
        "num_evaluated": len(evaluated),
        "fad": fad_result.to_dict(),
        "kad": None,
        "mad": None,
        "notes": notes,
    }
    if ref_embeddings is not None:
        kernels = kernel_stats(ref_embeddings, evaluated.embeddings)
        kad_result = bootstrap_ci(kernels.kad, len(ev), n_bootstrap, seed=seed)
        out["kad"] = {**kad_result.to_dict(), "bandwidth": kernels.bandwidth}
        quantised = mad_stats(ref_embeddings, ev, seed=seed, clusters=clusters)
        mad_result = bootstrap_ci(quantised.mad, len(ev), n_bootstrap, seed=seed)
        mad_result.ci_low = max(mad_result.ci_low, 0.0)  # MAD >= 0; the bias shift can cross 0
        if quantised.num_clusters < 5:
            out["notes"].append(
                f"MAD uses {quantised.num_clusters} clusters (one per 10 clips of the smaller set): "
                "coarse; use 50 or more clips per set"
            )
        out["mad"] = {
            **mad_result.to_dict(),
            "num_clusters": quantised.num_clusters,
            "pca_components": quantised.num_components,
        }
    else:
        out["notes"].append(
            "KAD, MAD and reference percentiles skipped: the reference statistics file holds no "
            "embeddings (rebuild it without --stats-only)"
        )
    if len(ev) >= 10:
        inf = fad_inf(ref_stats, ev, num_points=fad_inf_points, seed=seed)
        out["fad_inf"] = {
            "value": inf.value,
            "slope": inf.slope,
            "r2": inf.r2,
            "sizes": inf.sizes,
            "fads": inf.fads,
            "seed": inf.seed,
        }
    else:
        out["fad_inf"] = None
        out["notes"].append(f"FAD-inf skipped: needs >= 10 clips, got {len(ev)}")
    out["per_clip"] = per_clip_rows(ref_stats, evaluated, ref_embeddings)
    out["outliers"] = out["per_clip"][:num_outliers]
    return out


def per_clip_rows(
    reference: GaussianStats, evaluated: EmbeddingSet, reference_embeddings: np.ndarray | None
) -> list[dict]:
    """One row per evaluated clip, worst first: its Mahalanobis score to the reference Gaussian
    (the sort key), its reference percentile and its FAD contribution (FAD with it minus FAD
    without it).

    Ranked by the score, not the contribution: measured on the corpus (clap-bundled, 256-d, 120
    test clips, one clip degraded by 0 dB noise + clipping), the score ranked the planted clip
    worst at 3 of 3 positions and the leave-one-out contribution ranked it 93rd-95th; with fewer
    clips than dimensions the covariance terms of FAD dominate and a single outlier can lower it."""
    ev = evaluated.embeddings.astype(np.float64)
    scores, percentiles = per_clip_scores(reference, ev, reference_embeddings=reference_embeddings)
    contributions = fad_contributions(reference, ev) if len(ev) >= 3 else scores * np.nan
    names = evaluated.names()
    rows = [
        {
            "file": names[i],
            "path": str(evaluated.paths[i]),
            "fad_contribution": None if np.isnan(contributions[i]) else float(contributions[i]),
            "score": float(scores[i]),
            "reference_percentile": None if np.isnan(percentiles[i]) else float(percentiles[i]),
        }
        for i in range(len(names))
    ]
    return [rows[i] for i in np.argsort(-scores, kind="stable")]


def frame_level_fad(embedder: Embedder, reference: EmbeddingSet, evaluated: EmbeddingSet) -> dict:
    """FAD with the Gaussians fitted to every frame embedding of every clip (not to clip means):
    the protocol of Google's FAD, the `frechet-audio-distance` package and published VGGish FADs
    (e.g. MusicGen's model card). Uses the clips already kept in both sets; no interval."""
    from evaluation.audio_io import load_clip

    def frames(clips: EmbeddingSet) -> np.ndarray:
        return np.concatenate(
            [embedder.frame_embeddings(load_clip(p, embedder.sample_rate)[0]) for p in clips.paths]
        )

    reference_frames, evaluated_frames = frames(reference), frames(evaluated)
    with limit_threads(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rank warnings concern clip counts, not frame counts
        value = frechet_from_stats(
            gaussian_stats(reference_frames), gaussian_stats(evaluated_frames)
        )
    return {
        "value": value,
        "num_reference_frames": len(reference_frames),
        "num_evaluated_frames": len(evaluated_frames),
    }


def step_of(label: str) -> int | None:
    """Training step from a name like `checkpoint-1000`, `step_2000` or `run/5000`, else None."""
    match = re.search(r"(\d+)(?!.*\d)", Path(label).name)
    return int(match.group(1)) if match else None


def resolve_candidate(
    candidate: str,
    out_dir: Path,
    num_clips: int,
    seed: int,
    num_inference_steps: int,
    seconds_total: float,
    prompts: list[str] | None,
    device: str | None,
    progress: bool,
    prompt_rows: list[dict] | None = None,
    jobs: int = 1,
) -> tuple[Path, dict]:
    """A folder of audio for `candidate`: itself when it holds audio, else clips generated from it."""
    path = Path(candidate)
    if path.is_dir() and has_audio(path) and not is_checkpoint(path):
        return path, {"kind": "audio folder", "path": str(path)}
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(candidate)).strip("_")[-80:]
    folder = generate_clips(
        candidate,
        out_dir / "generated" / safe,
        num_clips,
        seed,
        num_inference_steps,
        seconds_total,
        prompts,
        device,
        progress,
        prompt_rows=prompt_rows,
        jobs=jobs,
    )
    return folder, {
        "kind": "checkpoint",
        "path": str(candidate),
        "generated_dir": str(folder),
        "num_clips": num_clips,
        "seeds": list(range(seed, seed + num_clips)),
        "num_inference_steps": num_inference_steps,
        "seconds_total": seconds_total,
    }


def folder_captions(folder: Path) -> dict[str, str] | None:
    """Captions of a folder's `metadata.jsonl`, or None when it has none or its rows carry no `text`
    (clips generated by an unconditional checkpoint record only their seeds)."""
    caption_file = metadata_file(folder)
    if caption_file is None:
        return None
    if not any("text" in row for row in read_rows(caption_file)):
        return None
    return read_captions(caption_file)


def reference_prompts(reference_dir: Path) -> tuple[list[str], list[dict]] | None:
    """Captions of the reference set in file-name order (prompts for text-conditioned checkpoints),
    with each caption's metadata row (so a generated clip records which reference clip prompted it)."""
    caption_file = metadata_file(reference_dir)
    if caption_file is None:
        return None
    captions = read_captions(caption_file)
    rows = {row.get("file_name"): row for row in read_rows(caption_file)}
    names = sorted(captions)
    return [captions[name] for name in names], [rows.get(name, {"file_name": name}) for name in names]


def subsample(clips: EmbeddingSet, n: int, seed: int) -> EmbeddingSet:
    """A seeded draw of `n` clips of `clips` (kept in file order), or `clips` itself when it has `n` or fewer.

    The draw depends only on the seed and the sorted file names, so sets holding the same names
    (clips generated with the same seeds or prompts) keep the same clips and stay paired."""
    if len(clips) <= n:
        return clips
    order = np.argsort(clips.names(), kind="stable")
    keep = np.sort(order[np.random.default_rng(seed).permutation(len(clips))[:n]])
    note = f"evaluated on {n} of {len(clips)} clips (seeded draw, seed {seed}) so every set has the same N"
    return _select(clips, keep, note)


def _select(clips: EmbeddingSet, indices: np.ndarray, note: str | None = None) -> EmbeddingSet:
    return dataclasses.replace(
        clips,
        paths=[clips.paths[i] for i in indices],
        embeddings=clips.embeddings[indices],
        durations_s=clips.durations_s[indices],
        notes=clips.notes + ([note] if note else []),
    )


def hold_out(reference: EmbeddingSet, n: int, seed: int) -> tuple[EmbeddingSet, EmbeddingSet] | None:
    """Split the reference into (the reference every set is scored against, `n` held-out real clips
    scored like a candidate: the real-vs-real floor). None when fewer than 2 clips would remain."""
    if len(reference) - n < 2:
        return None
    held = np.zeros(len(reference), dtype=bool)
    held[np.random.default_rng([seed, 25]).permutation(len(reference))[:n]] = True
    rest = _select(
        reference,
        np.flatnonzero(~held),
        f"{n} of {len(reference)} reference clips held out (seeded) as the real-vs-real floor",
    )
    floor = _select(reference, np.flatnonzero(held))
    return rest, floor


def metric_visibility(embedder_name: str, n: int) -> dict[str, dict]:
    """Per report metric: may the report show it at N = `n` (the quality ladder's verdict), and why not."""
    visibility = {}
    for metric in REPORT_METRICS:
        shown, note = metric_shown(embedder_name, metric, n)
        visibility[metric] = {"shown": shown, "note": note}
    return visibility


def withhold(entry: dict, visibility: dict[str, dict]) -> None:
    """Drop the values of metrics the ladder does not trust at this N from a scored entry (in place)."""
    for metric, seen in visibility.items():
        if seen["shown"]:
            continue
        if metric in ("fad", "fad_inf", "kad", "mad"):
            entry["distances"][metric] = None
        elif metric in entry:
            entry[metric] = None


def score_set(
    model: Embedder,
    reference: EmbeddingSet | ReferenceStats,
    clips: EmbeddingSet,
    captions: dict[str, str] | None,
    train: EmbeddingSet | None,
    baseline: EmbeddingSet | None,
    cache: EmbeddingCache | None,
    settings: dict,
) -> dict:
    """Every report metric of one set (a candidate or the held-out floor) against the reference:
    distances with intervals, CLAP score where there are captions, memorization against `train`."""
    entry = {
        "set": clips.summary(),
        "distances": distance_scores(
            reference, clips, settings["n_bootstrap"], settings["seed"], clusters=settings["clusters"]
        ),
        "clap_score": None,
        "memorization": None,
    }
    if model.supports_text and captions is not None:
        entry["clap_score"] = clap_score(
            model, clips, captions, allow_unpaired=True, seed=settings["seed"]
        ).to_dict()
    if train is not None:
        entry["memorization"] = memorization_of(
            clips, train, baseline, cache, settings["memorization_fpr"], settings["progress"],
            settings.get("tempo_normalise", False), settings.get("melody_view", True),
        )
    return entry


def compare(
    candidates: list[str],
    reference_dir: str | Path,
    train_dir: str | Path | None = None,
    out_dir: str | Path = "outputs/evaluation",
    embedder: str | Embedder = "clap-bundled",
    embedder_kwargs: dict | None = None,
    num_clips: int = 64,
    seed: int = 0,
    num_inference_steps: int = 50,
    seconds_total: float = 5.0,
    n_bootstrap: int = 500,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    on_error: str = "raise",
    device: str | None = None,
    memorization_fpr: float = 0.01,
    memorization_tempo_normalise: bool = False,
    memorization_melody_view: bool = True,
    write: bool = True,
    max_players: int = 6,
    progress: bool = True,
    jobs: int = 1,
    eval_clips: int | None = None,
) -> dict:
    """Evaluate each candidate against `reference_dir` (and memorization against `train_dir`).

    Every candidate is scored at the same N: `eval_clips`, by default the smallest candidate's
    clip count; larger sets are subsampled (seeded), a smaller one is scored alone and kept out of
    every comparison. N reference clips are held out and scored like a candidate (the floor a
    real set reaches; also the memorization baseline); the rest is the reference for all.
    Returns the JSON-ready report; with `write=True` also writes report.json/.md/.html to `out_dir`.
    """
    # 1. Check inputs
    if not candidates:
        raise ValueError("compare needs at least one checkpoint or folder of audio")
    if eval_clips is not None and eval_clips < 2:
        raise ValueError(f"eval_clips must be at least 2, got {eval_clips}")
    reference_dir = Path(reference_dir)
    reference_file = load_reference_stats(reference_dir) if is_stats_file(reference_dir) else None
    if reference_file is None and not reference_dir.is_dir():
        raise FileNotFoundError(f"reference folder not found: {reference_dir}")
    if train_dir is not None and not Path(train_dir).is_dir():
        raise FileNotFoundError(f"train folder not found: {train_dir}")
    out_dir = Path(out_dir)
    # 2. Embedder and cache
    model = (
        embedder
        if isinstance(embedder, Embedder)
        else get_embedder(embedder, **(embedder_kwargs or {}))
    )
    cache = EmbeddingCache(cache_dir) if use_cache else None
    # 3. Embed the reference and training sets
    if reference_file is not None:
        reference_file.check_embedder(model.describe())
        reference: EmbeddingSet | ReferenceStats = reference_file
    else:
        reference = embed_directory(
            model, reference_dir, cache, on_error=on_error, progress=progress
        )
    train = (
        embed_directory(model, train_dir, cache, on_error=on_error, progress=progress)
        if train_dir
        else None
    )
    if train is not None:  # refuse before generating anything
        if isinstance(reference, EmbeddingSet):
            check_calibration_size(
                len(reference), memorization_fpr, f"the reference set {reference_dir} (memorization baseline)"
            )
        else:
            check_calibration_size(
                len(train), memorization_fpr, "the training set (calibrated against itself)"
            )
    if reference_file is not None:
        names = sorted(reference_file.captions or {})
        prompts, prompt_rows = (
            ([reference_file.captions[n] for n in names], [{"file_name": n} for n in names])
            if names
            else (None, None)
        )
    else:
        prompts, prompt_rows = reference_prompts(reference_dir) or (None, None)
    # 4. Every candidate as a folder of audio, embedded
    results, sets, caption_sets = [], [], []
    for candidate in candidates:
        folder, source = resolve_candidate(
            candidate,
            out_dir,
            num_clips,
            seed,
            num_inference_steps,
            seconds_total,
            prompts,
            device,
            progress,
            prompt_rows=prompt_rows,
            jobs=jobs,
        )
        sets.append(embed_directory(model, folder, cache, on_error=on_error, progress=progress))
        caption_sets.append(folder_captions(folder))
        results.append({"label": str(candidate), "step": step_of(str(candidate)), "source": source,
                        # tempo and key hit rates over the whole folder, None when no prompt asks for them
                        "control": control_entry(folder)})
    # 5. Equal footing: one N, one reference, one MAD cluster count, the floor held out
    n = eval_clips or min(len(s) for s in sets)
    footing, reference, floor_set = equal_footing(reference, n, seed, train, memorization_fpr)
    baseline = reference if isinstance(reference, EmbeddingSet) else None
    settings = {
        "n_bootstrap": n_bootstrap,
        "seed": seed,
        "clusters": footing["mad_clusters"],
        "memorization_fpr": memorization_fpr,
        "tempo_normalise": memorization_tempo_normalise,
        "melody_view": memorization_melody_view,
        "progress": progress,
    }
    visibility = metric_visibility(model.name, n)
    floor = None
    if floor_set is not None:
        floor = {"label": "held-out real clips (floor)", **score_set(
            model, reference, floor_set, reference_captions(reference_dir, reference_file), train,
            baseline, cache, settings,
        )}
        withhold(floor, visibility)
    # 6. Score every candidate
    for index, (entry, clips, captions) in enumerate(zip(results, sets, caption_sets)):
        evaluated = subsample(clips, n, seed)
        entry["comparable"] = len(evaluated) == n
        if not entry["comparable"]:
            entry["not_comparable"] = (
                f"{len(evaluated)} clips, fewer than the N={n} every other set is scored at: its "
                "FAD, KAD and MAD are not comparable with theirs, so it is left out of every ranking and test"
            )
        entry.update(score_set(model, reference, evaluated, captions, train, baseline, cache, settings))
        withhold(entry, visibility)
        entry["players"] = [str(p) for p in evaluated.paths[:max_players]]
        entry["worst_clips"] = entry["distances"]["outliers"][:max_players]
        sets[index] = evaluated
    # 7. Paired tests between neighbouring candidates (e.g. successive training steps)
    tests = []
    for i in range(len(sets) - 1):
        a, b = results[i], results[i + 1]
        if not (a["comparable"] and b["comparable"]):
            odd = a if not a["comparable"] else b
            tests.append({
                "a": a["label"], "b": b["label"], "refused": f"{odd['label']} has {odd['set']['num_clips']} clips, "
                f"not N={n}: sets of different N are not comparable",
            })
            continue
        tests.append(paired_tests(
            reference, sets[i], sets[i + 1], a["label"], b["label"], n_bootstrap, seed,
            clusters=footing["mad_clusters"], visibility=visibility,
        ))
    # 8. Manifest and report
    report = {
        "manifest": {
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "embedder": model.describe(),
            "sample_rate_hz": model.sample_rate,
            "reference": reference.summary(),
            "train": train.summary() if train is not None else None,
            "seed": seed,
            "n_bootstrap": n_bootstrap,
            "copy_detector": CopyDetector().describe(),
            "memorization_false_positive_rate": memorization_fpr,
            "memorization_melody_view": memorization_melody_view,
            "packages": package_versions(),
            "command": " ".join(sys.argv),
        },
        "footing": {**footing, "visibility": visibility},
        "floor": floor,
        "candidates": results,
        "paired_tests": tests,
    }
    if write and distributed.is_main_process():
        from evaluation.report import write_reports

        report["files"] = {
            k: str(v) for k, v in write_reports(report, out_dir, max_players=max_players).items()
        }
    return report


def equal_footing(
    reference: EmbeddingSet | ReferenceStats, n: int, seed: int, train: EmbeddingSet | None, fpr: float
) -> tuple[dict, EmbeddingSet | ReferenceStats, EmbeddingSet | None]:
    """The common N, the reference every set is scored against (the given one less N held-out
    clips), the held-out floor set (None when it cannot be made) and MAD's cluster count."""
    notes, floor_set = [], None
    if isinstance(reference, ReferenceStats):
        notes.append("no real-vs-real floor: a statistics file holds no clips to hold out")
    else:
        split = hold_out(reference, n, seed)
        if split is None:
            notes.append(f"no real-vs-real floor: the reference has {len(reference)} clips, too few to hold out {n}")
        elif train is not None and len(split[0]) < min_calibration_clips(fpr):
            notes.append(
                f"no real-vs-real floor: holding out {n} of {len(reference)} reference clips would leave "
                f"{len(split[0])}, too few to calibrate memorization at {fpr:.0%} false positives"
            )
        else:
            reference, floor_set = split
    clusters = num_clusters(n, len(reference))
    footing = {
        "n": n,
        "seed": seed,
        "num_reference": len(reference),
        "mad_clusters": clusters,
        "floor_held_out": floor_set is not None,
        "notes": notes,
    }
    return footing, reference, floor_set


def reference_captions(reference_dir: Path, reference_file: ReferenceStats | None) -> dict[str, str] | None:
    """Captions of the reference clips (for the floor's CLAP score), keyed like the set's names."""
    if reference_file is not None:
        return reference_file.captions
    # the corpus keeps one metadata.jsonl per split (valid/), not per subset folder (valid/drums/)
    return folder_captions(reference_dir) or folder_captions(reference_dir.parent)


def paired_tests(
    reference: EmbeddingSet | ReferenceStats,
    a: EmbeddingSet,
    b: EmbeddingSet,
    label_a: str,
    label_b: str,
    n_bootstrap: int,
    seed: int,
    clusters: int | None = None,
    visibility: dict[str, dict] | None = None,
) -> dict:
    """Does A beat B on FAD, KAD and MAD? Paired when both sets hold the same file names (same
    seeds/prompts). Refused (a `refused` reason instead of numbers) when A and B differ in N;
    metrics that `visibility` withholds at this N are None. MAD uses `clusters` for both."""
    if len(a) != len(b):
        return {
            "a": label_a,
            "b": label_b,
            "refused": f"{len(a)} vs {len(b)} clips: FAD, KAD and MAD depend on N, so sets of "
            "different N are not comparable",
        }
    with limit_threads(1):
        out = _paired_tests(reference, a, b, label_a, label_b, n_bootstrap, seed, clusters)
    for metric, seen in (visibility or {}).items():
        if metric in ("fad", "kad", "mad") and not seen["shown"]:
            out[metric] = None
    return out


def _paired_tests(
    reference: EmbeddingSet | ReferenceStats,
    a: EmbeddingSet,
    b: EmbeddingSet,
    label_a: str,
    label_b: str,
    n_bootstrap: int,
    seed: int,
    clusters: int | None,
) -> dict:
    paired = a.names() == b.names()
    ref_stats = reference_gaussian(reference)
    ea, eb = a.embeddings.astype(np.float64), b.embeddings.astype(np.float64)
    fad_test = paired_bootstrap_test(
        lambda idx: frechet_from_stats(ref_stats, gaussian_stats(ea[idx], warn_rank=False)),
        lambda idx: frechet_from_stats(ref_stats, gaussian_stats(eb[idx], warn_rank=False)),
        len(ea),
        len(eb),
        paired=paired,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )
    out = {"a": label_a, "b": label_b, "paired": paired, "fad": fad_test.to_dict()}
    out["kad"] = out["mad"] = None
    if reference.embeddings is not None:
        ka, kb = kernel_stats(reference.embeddings, ea), kernel_stats(reference.embeddings, eb)
        out["kad"] = paired_bootstrap_test(
            ka.kad, kb.kad, len(ea), len(eb), paired=paired, n_bootstrap=n_bootstrap, seed=seed
        ).to_dict()
        ma = mad_stats(reference.embeddings, ea, seed, clusters=clusters)
        mb = mad_stats(reference.embeddings, eb, seed, clusters=clusters)
        out["mad"] = paired_bootstrap_test(
            ma.mad, mb.mad, len(ea), len(eb), paired=paired, n_bootstrap=n_bootstrap, seed=seed
        ).to_dict()
    return out
