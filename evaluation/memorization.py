"""Memorization: how much of what a model generates is a copy of a training clip?

The headline is the copy detector of `evaluation.copy_detection` (robust to offset, loop rotation,
+-2 semitones, +-6% tempo, gain, noise, low-pass and mixing under other material): a clip is a copy
when its copy score (spectral and rhythm), its melody score (transposition-invariant chroma) or
its verified residual SNR (how much of the clip the named training clip explains on the waveform)
is above a threshold calibrated on held-out clips (never trained on) at a chosen false-positive
rate; the share of copies comes with a Wilson 95% interval and every flagged clip with the training
clip, offset, semitones, tempo ratio, gain and residual SNR. The nearest training clip in embedding space (cosine,
torch matmul; faiss when installed and the training set is large) is kept beside it as context,
not in the headline: held-out clips sit as close to their nearest training clip as copies do.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from evaluation.audio_io import load_clips
from evaluation.cache import EmbeddingCache
from evaluation.copy_detection import CopyDetector, CopyMatch
from evaluation.embedding import EmbeddingSet
from evaluation.intervals import wilson_interval


def _comparable(
    embeddings: np.ndarray, train: np.ndarray, standardize: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit vectors for cosine similarity. With `standardize`, dimensions are first centred and
    scaled by the training set's mean and std: CLAP spaces put every clip of a small corpus in one
    narrow cone (measured: median nearest-neighbour cosine 0.996 between *different* corpus clips
    with clap-bundled), and features like mel-stats mix units, so raw cosine separates little."""
    query = torch.as_tensor(embeddings, dtype=torch.float32)
    keys = torch.as_tensor(train, dtype=torch.float32)
    if standardize:
        mean, std = keys.mean(0), keys.std(0).clamp_min(1e-6)
        query, keys = (query - mean) / std, (keys - mean) / std
    return torch.nn.functional.normalize(query, dim=-1), torch.nn.functional.normalize(keys, dim=-1)


def nearest_neighbours(
    queries: np.ndarray,
    keys: np.ndarray,
    standardize: bool = True,
    chunk: int = 1024,
    use_faiss: bool | None = None,
    exclude_self: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity and index of each query's nearest key. `[Q]` float32, `[Q]` int64.

    `standardize` (default) measures cosine after centring/scaling by the keys' statistics.
    `use_faiss=None` uses faiss (exact inner-product index) when installed and keys > 50,000.
    `exclude_self=True` ignores index i for query i (a set against itself).
    """
    query, key = _comparable(queries, keys, standardize)
    if use_faiss is None:
        use_faiss = (
            len(key) > 50_000 and importlib.util.find_spec("faiss") is not None and not exclude_self
        )
    if use_faiss:
        import faiss

        index = faiss.IndexFlatIP(key.shape[1])
        index.add(key.numpy())
        similarity, indices = index.search(query.numpy(), 1)
        return similarity[:, 0].astype(np.float32), indices[:, 0].astype(np.int64)
    best_sim, best_idx = [], []
    for start in range(0, len(query), chunk):
        sims = query[start : start + chunk] @ key.T
        if exclude_self:
            rows = torch.arange(sims.shape[0])
            sims[rows, rows + start] = -float("inf")
        value, index = sims.max(dim=1)
        best_sim.append(value)
        best_idx.append(index)
    return torch.cat(best_sim).numpy(), torch.cat(best_idx).numpy().astype(np.int64)


def min_calibration_clips(false_positive_rate: float) -> int:
    """Fewest calibration clips that resolve a `false_positive_rate` threshold (100 for 1%)."""
    if not 0 < false_positive_rate < 1:
        raise ValueError(
            f"false-positive rate must be between 0 and 1 (0.01 = 1%), got {false_positive_rate}"
        )
    return math.ceil(1 / false_positive_rate - 1e-9)


def check_calibration_size(num_clips: int, false_positive_rate: float, what: str) -> None:
    """Refuse a calibration set too small for the rate: with 2 clips a "1%" threshold is the
    lowest score of a pair, and every generated clip would be flagged as a copy."""
    needed = min_calibration_clips(false_positive_rate)
    if num_clips < needed:
        raise ValueError(
            f"{what} has {num_clips} clip(s): calibrating a {false_positive_rate:.2%} false-positive "
            f"threshold needs at least {needed}; add clips, or raise --fpr to "
            f"{1 / max(num_clips, 1):.3g} or more"
        )


def calibrate_threshold(baseline_scores: np.ndarray, false_positive_rate: float = 0.01,
                        target_rate: float | None = None) -> float:
    """Score above which at most `false_positive_rate` of held-out (never trained on) clips fall.

    Refuses (ValueError) fewer than `min_calibration_clips` of `target_rate` scores (the joint
    calibration's target, which tries rates below it; default twice the rate, a little slack for
    rates between two such sizes)."""
    baseline_scores = np.asarray(baseline_scores, dtype=np.float64)
    size_rate = target_rate if target_rate is not None else min(0.5, 2 * false_positive_rate)
    check_calibration_size(len(baseline_scores), size_rate, "the baseline")
    return float(np.quantile(baseline_scores, 1 - false_positive_rate, method="higher"))


# the detector's scores, each with its own threshold: name -> CopyMatch field
COPY_SCORES = {"copy_score": "score", "melody_score": "melody_score", "residual_snr_db": "residual_snr_db",
               "landmark_score": "landmark_score"}  # the landmark view only with CopyDetector(landmarks=True)


def deciding_views(melody_view: bool = True) -> tuple[str, ...]:
    """The scores that decide whether a clip is a copy (names of `COPY_SCORES`).

    `melody_view=False` leaves out the melody score, for unpitched material (drum kits, percussion): it
    compares transposition-invariant chroma, which on drums is the kits' timbre and the pattern's
    accents rather than a melody. Measured on the drums benchmark (README, "The melody view on drums"):
    it flagged no planted drums copy that the copy score or the verified residual SNR did not also flag,
    and it alone flagged 21 of the 35 held-out drum clips flagged at the cross-validated rate. The score
    is still computed and reported, as context."""
    return tuple(name for name in COPY_SCORES if melody_view or name != "melody_score")


def copy_scores(match: CopyMatch, views: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """`{score name: [clips]}` of the scores `match` holds (the residual SNR only once verified), only
    those in `views` when given (`deciding_views`)."""
    return {name: np.asarray(getattr(match, field_name), dtype=np.float64)
            for name, field_name in COPY_SCORES.items()
            if getattr(match, field_name) is not None and (views is None or name in views)}


def calibrate_thresholds(baseline: CopyMatch, false_positive_rate: float = 0.01,
                         views: tuple[str, ...] | None = None) -> dict[str, float]:
    """Thresholds of the copy score, the melody score and (once verified) the residual SNR (those
    of them in `views`, when given), calibrated jointly on held-out clips' best matches: all at the
    same quantile, the highest quantile at which flagging a clip when any is exceeded keeps the held-out
    rate at or below `false_positive_rate` (between the rate itself and the rate over the number of
    scores, where the union can be no more than the sum)."""
    check_calibration_size(len(baseline.score), false_positive_rate, "the held-out baseline")
    scores = copy_scores(baseline, views)
    thresholds = {}
    for rate in np.linspace(false_positive_rate, false_positive_rate / len(scores), 51):
        thresholds = {name: calibrate_threshold(values, rate, target_rate=false_positive_rate)
                      for name, values in scores.items()}
        if np.mean(flag_copies(baseline, thresholds)) <= false_positive_rate:
            break
    return thresholds


def subset(match: CopyMatch, keep: np.ndarray) -> CopyMatch:
    """The clips of `match` where `keep` (`[clips]` bool) holds: every per-clip field cut to them."""
    fields = {}
    for item in dataclasses.fields(match):
        value = getattr(match, item.name)
        if isinstance(value, np.ndarray) and value.ndim and len(value) == len(keep):
            fields[item.name] = value[keep]
    return dataclasses.replace(match, **fields)


# The lowest nominal rate cross-validation tries, as a share of the target rate.
LOWEST_NOMINAL_SHARE = 0.5


def check_cross_validation_size(num_clips: int, false_positive_rate: float, folds: int, what: str,
                                lowest_share: float = LOWEST_NOMINAL_SHARE) -> None:
    """Refuse (`check_calibration_size`) a calibration set whose fits, each leaving one of `folds` out, hold
    too few clips for the lowest nominal rate `cross_validated_rate` tries."""
    check_calibration_size(num_clips * (folds - 1) // folds, false_positive_rate * lowest_share,
                           f"{what} less one of {folds} cross-validation folds")


def source_groups(paths: list[Path]) -> list[str]:
    """One label a clip for `cross_validated_rate`'s folds: its metadata `group` (clips that share source
    material), else its own path."""
    return [str(group if group is not None else path) for group, path in zip(metadata_values(paths, "group"), paths)]


def cross_validated_rate(baseline: CopyMatch, false_positive_rate: float = 0.01, groups: list | None = None,
                         folds: int = 5, repeats: int = 4, seed: int = 0,
                         lowest_share: float = LOWEST_NOMINAL_SHARE, steps: int = 11,
                         views: tuple[str, ...] | None = None) -> dict:
    """The nominal rate to calibrate at so that clips outside the calibration set are flagged at most
    `false_positive_rate` of the time.

    Thresholds fitted at a rate sit on the calibration clips' own tail, so new clips exceed them more often
    than the rate (measured on copy-8: 1.3% of 1,712 drums and 1.2% of 1,019 pitched fresh clips at a
    nominal 1%). Repeated K-fold cross-validation on the calibration clips alone: for nominal rates from
    `false_positive_rate` down to `lowest_share` of it, fit on all folds but one and count the flags on the
    one left out, pooled over the folds and `repeats` shuffles of them; the highest nominal rate whose pooled
    rate is at most the target (the lowest tried when none is). `groups` (one label a clip, e.g. the corpus's
    `group`: clips that share source material) keeps such clips in one fold, so that the left-out fold is as
    new to the fit as a fresh clip. `views`: the deciding scores (`deciding_views`; default all).

    Returns `{"nominal_rate", "cross_validated_rate", "folds", "repeats", "tried": {nominal: pooled rate}}`.
    """
    size = len(baseline.score)
    check_cross_validation_size(size, false_positive_rate, folds, "the calibration set", lowest_share)
    labels = [str(label) for label in (groups if groups is not None else range(size))]
    unique = sorted(set(labels))
    splits = []
    for repeat in range(repeats):
        order = np.random.default_rng(seed + repeat).permutation(len(unique))
        fold_of_group = {group: int(order[index] % folds) for index, group in enumerate(unique)}
        splits.append(np.asarray([fold_of_group[label] for label in labels]))
    tried = {}
    for nominal in np.linspace(false_positive_rate, false_positive_rate * lowest_share, steps):
        flagged = sum(int(flag_copies(subset(baseline, fold == k),
                                      calibrate_thresholds(subset(baseline, fold != k), float(nominal),
                                                           views)).sum())
                      for fold in splits for k in range(folds))
        tried[round(float(nominal), 6)] = flagged / (size * repeats)
        if flagged / (size * repeats) <= false_positive_rate:
            break
    chosen = list(tried)[-1]
    return {"nominal_rate": chosen, "cross_validated_rate": tried[chosen], "folds": folds, "repeats": repeats,
            "tried": tried}


def flag_copies(match: CopyMatch, thresholds: dict[str, float]) -> np.ndarray:
    """`[clips]` bool: any of the copy score, the melody score and the residual SNR (where both the
    match and the thresholds hold it) above its calibrated threshold."""
    flagged = np.zeros(len(match.score), dtype=bool)
    for name, values in copy_scores(match).items():
        if name in thresholds:
            flagged |= values > thresholds[name]
    return flagged


def histogram(values: np.ndarray, edges: np.ndarray) -> list[int]:
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    return [int(c) for c in counts]


@dataclass
class MemorizationResult:
    """Per-clip best training matches, calibrated thresholds, the share of copies with its interval,
    histograms and the strongest matches (with the transform that maps one clip onto the other)."""

    rows: list[dict]
    thresholds: dict[str, float]
    share_above: dict
    baseline: dict
    histograms: dict
    top_matches: list[dict]
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "thresholds": self.thresholds,
            "share_above": self.share_above,
            "baseline": self.baseline,
            "histograms": self.histograms,
            "top_matches": self.top_matches,
            "settings": self.settings,
            "per_clip": self.rows,
        }


def metadata_values(paths: list[Path], key: str) -> list[object | None]:
    """Each clip's `key` from its folder's metadata.jsonl (the nearest one above it holding the key for it,
    matched by `file_name`); None where none does."""
    tables: dict[Path, dict[str, object]] = {}
    out: list[object | None] = []
    for path in paths:
        value = None
        for folder in path.parents:
            if folder not in tables:
                meta = folder / "metadata.jsonl"
                tables[folder] = {}
                if meta.exists():
                    for line in meta.read_text().splitlines():
                        row = json.loads(line) if line.strip() else {}
                        if row.get(key):
                            tables[folder][str(row["file_name"])] = row[key]
            name = path.relative_to(folder).as_posix()
            if name in tables[folder]:
                value = tables[folder][name]
                break
        out.append(value)
    return out


def metadata_tempi(paths: list[Path], estimate: bool = True) -> list[float | None]:
    """Tempo (BPM) of each clip from the `bpm` of its folder's metadata.jsonl (`metadata_values`), else
    estimated from the audio (`music.tempo`) when `estimate`."""
    out: list[float | None] = []
    for path, bpm in zip(paths, metadata_values(paths, "bpm")):
        if bpm is None and estimate:
            bpm = _estimated_bpm(path)
        out.append(None if bpm is None else float(bpm))
    return out


def _estimated_bpm(path: Path) -> float | None:
    from evaluation.audio_io import load_clip
    from music.tempo import estimate_tempo

    audio, rate = load_clip(path)
    try:
        return float(estimate_tempo(audio, rate).bpm)
    except ValueError:  # no beat: matched at its own tempo
        return None


class TrainingAudio:
    """`key_audio` of `CopyDetector.verify`: waveform of training clip i, decoded once and kept."""

    def __init__(self, paths: list[Path], sample_rate: int) -> None:
        self.paths, self.sample_rate, self._cache = list(paths), sample_rate, {}

    def __call__(self, index: int) -> np.ndarray:
        if index not in self._cache:
            self._cache[index] = load_clips([self.paths[index]], self.sample_rate, on_error="raise")[0][0]
        return self._cache[index]


def memorization_report(
    generated: EmbeddingSet,
    train: EmbeddingSet,
    baseline: EmbeddingSet | None = None,
    detector: CopyDetector | None = None,
    cache: EmbeddingCache | None = None,
    false_positive_rate: float = 0.01,
    top_k: int = 10,
    progress: bool = True,
    tempo_normalise: bool = False,
    cross_validate: int = 0,
    melody_view: bool = True,
) -> MemorizationResult:
    """Memorization of `generated` against `train`, calibrated on `baseline` (held-out real clips).

    The headline is the share of generated clips the copy detector flags (copy score or melody score
    above thresholds set at `false_positive_rate` on the baseline), with a Wilson 95% interval. The
    embedding view (nearest training clip by cosine) is reported beside it but is not part of the
    headline: on the demo corpus held-out clips sit as close to training clips as copies do.
    Without a baseline, thresholds come from train against itself (each clip's nearest *other*
    training clip), which is stricter when the training set holds near-duplicates; a note says so.
    `tempo_normalise` puts every clip at one tempo first (metadata `bpm`, else estimated), for
    tempo-normalised models whose clips come out at another tempo than the training clip's.
    `cross_validate` (folds; 0: off) fits the copy thresholds at the nominal rate that cross-validation on
    the baseline finds keeps new clips at `false_positive_rate` (`cross_validated_rate`; folds by the
    metadata's `group` where the clips have one), instead of at the rate itself.
    `melody_view=False` (unpitched material: drums, percussion) decides on the copy score and the residual
    SNR alone (`deciding_views`); the melody score is still reported.
    """
    what = "the held-out baseline set (--baseline)" if baseline is not None else \
        "the training set (calibrated against itself)"
    calibration_size = len(baseline) if baseline is not None else len(train)
    check_calibration_size(calibration_size, false_positive_rate, what)
    if cross_validate:  # before any matching
        check_cross_validation_size(calibration_size, false_positive_rate, cross_validate, what)
    detector = detector or CopyDetector()
    train_names = train.names()
    notes = []

    def tempi(paths: list[Path]) -> list[float | None] | None:
        return metadata_tempi(paths) if tempo_normalise else None

    # 1. Embedding-space nearest neighbours (context only)
    emb_sim, emb_idx = nearest_neighbours(generated.embeddings, train.embeddings)
    # 2. Copy detection
    train_features = detector.features_for_files(train.paths, cache, progress, "copy features (train)")
    train_bpm = tempi(train.paths)
    generated_features = detector.features_for_files(generated.paths, cache, progress, "copy features (generated)")
    copy = detector.match(generated_features, train_features, progress=progress,
                          query_bpm=tempi(generated.paths), key_bpm=train_bpm)
    key_audio = TrainingAudio(train.paths, detector.sample_rate)
    generated_audio = load_clips(generated.paths, detector.sample_rate)[0]
    copy = detector.verify(generated_audio, copy, key_audio, progress)
    if detector.landmarks:
        copy = detector.match_landmarks(generated_audio, copy, key_audio, len(train), progress=progress)
    # 3. Baseline and calibrated thresholds
    if baseline is not None:
        base_sim, _ = nearest_neighbours(baseline.embeddings, train.embeddings)
        base_features = detector.features_for_files(baseline.paths, cache, progress, "copy features (baseline)")
        base_copy = detector.match(base_features, train_features, progress=progress,
                                   query_bpm=tempi(baseline.paths), key_bpm=train_bpm)
        baseline_audio = load_clips(baseline.paths, detector.sample_rate)[0]
        base_copy = detector.verify(baseline_audio, base_copy, key_audio, progress)
        if detector.landmarks:
            base_copy = detector.match_landmarks(baseline_audio, base_copy, key_audio, len(train), progress=progress)
        baseline_name = "held-out vs train"
    else:
        base_sim, _ = nearest_neighbours(train.embeddings, train.embeddings, exclude_self=True)
        base_copy = detector.match(train_features, train_features, exclude_self=True, progress=progress,
                                   query_bpm=train_bpm, key_bpm=train_bpm)
        base_copy = detector.verify([key_audio(i) for i in range(len(train))], base_copy, key_audio, progress)
        if detector.landmarks:
            base_copy = detector.match_landmarks([key_audio(i) for i in range(len(train))], base_copy, key_audio,
                                                 len(train), exclude_self=True, progress=progress)
        baseline_name = "train vs rest of train (no held-out set given)"
        notes.append("no held-out baseline: thresholds calibrated on train against itself")
    deciding = deciding_views(melody_view)
    cross_validation, nominal = None, false_positive_rate
    if cross_validate:
        groups = source_groups(baseline.paths if baseline is not None else train.paths)
        cross_validation = cross_validated_rate(base_copy, false_positive_rate, groups, folds=cross_validate,
                                                views=deciding)
        nominal = cross_validation["nominal_rate"]
    thresholds = {
        **calibrate_thresholds(base_copy, nominal, deciding),
        "embedding_similarity": calibrate_threshold(base_sim, false_positive_rate),
    }
    flagged = flag_copies(copy, thresholds)
    copies = int(flagged.sum())
    share_above = {
        "copies": copies / len(flagged),
        "copies_ci95": wilson_interval(copies, len(flagged)),
        "copy_score": float(np.mean(copy.score > thresholds["copy_score"])),
        **({"melody_score": float(np.mean(copy.melody_score > thresholds["melody_score"]))}
           if "melody_score" in thresholds else {}),
        "residual_snr_db": float(np.mean(copy.residual_snr_db > thresholds["residual_snr_db"])),
        "embedding_similarity": float(np.mean(emb_sim > thresholds["embedding_similarity"])),
        **({"landmark_score": float(np.mean(copy.landmark_score > thresholds["landmark_score"]))}
           if copy.landmark_score is not None else {}),
        "baseline_copies": float(np.mean(flag_copies(base_copy, thresholds))),
        "baseline_embedding_similarity": float(np.mean(base_sim > thresholds["embedding_similarity"])),
    }
    # 4. Per-clip rows, histograms, top matches
    names = generated.names()
    rows = [
        {
            "file": names[i],
            "copy_train_file": train_names[copy.index[i]],
            "copy_score": float(copy.score[i]),
            "copy_offset_s": float(copy.offset_s[i]),
            "semitones": float(copy.semitones[i]),
            "tempo_ratio": float(copy.tempo_ratio[i]),
            "gain_db": float(copy.gain_db[i]),
            "melody_train_file": train_names[copy.melody_index[i]],
            "melody_score": float(copy.melody_score[i]),
            "melody_semitones": float(copy.melody_semitones[i]),
            "matched_part": str(copy.part[i]),
            "residual_snr_db": float(copy.residual_snr_db[i]),
            "verified_train_file": train_names[copy.verified_index[i]],
            "verified_semitones": float(copy.verified_semitones[i]),
            "verified_tempo_ratio": float(copy.verified_tempo_ratio[i]),
            "nearest_train_file": train_names[emb_idx[i]],
            "embedding_similarity": float(emb_sim[i]),
            "above_threshold": bool(flagged[i]),
            **({"landmark_train_file": train_names[copy.landmark_index[i]] if copy.landmark_index[i] >= 0 else None,
                "landmark_score": float(copy.landmark_score[i]), "landmark_offset_s": float(copy.landmark_offset_s[i])}
               if copy.landmark_score is not None else {}),
        }
        for i in range(len(generated))
    ]
    views = (
        ("copy_score", copy.score, base_copy.score),
        ("melody_score", copy.melody_score, base_copy.melody_score),
        ("residual_snr_db", copy.residual_snr_db, base_copy.residual_snr_db),
        ("embedding_similarity", emb_sim, base_sim),
        *([("landmark_score", copy.landmark_score, base_copy.landmark_score)]
          if copy.landmark_score is not None else []),
    )
    histograms = {}
    for name, values, base in views:
        low = min(values.min(), base.min())
        high = max(values.max(), base.max(), thresholds.get(name, -np.inf))
        edges = np.linspace(low, high + 0.05 * (high - low) + 1e-6, 31)  # room to show the threshold line
        histograms[name] = {"edges": edges.tolist(), "generated": histogram(values, edges),
                            "baseline": histogram(base, edges)}
    # strongest first: the share of held-out clips that reach the clip's strongest score (the smaller,
    # the stronger; scores on different scales compare this way), ties by the residual SNR
    scores, base_scores = copy_scores(copy, deciding), copy_scores(base_copy, deciding)
    reached = {name: np.mean(base_scores[name][None, :] >= values[:, None], axis=1) for name, values in scores.items()}
    strongest = np.stack(list(reached.values())).argmin(axis=0)
    exceedance = np.stack(list(reached.values())).min(axis=0)
    order = np.lexsort((-copy.residual_snr_db, exceedance))[:top_k]
    sources = {"copy_score": copy.index, "melody_score": copy.melody_index, "residual_snr_db": copy.verified_index,
               "landmark_score": copy.landmark_index}
    names_by = {"copy_score": "copy", "melody_score": "melody", "residual_snr_db": "verification",
                "landmark_score": "landmarks"}
    top_matches = []
    for i in order:
        by = list(reached)[int(strongest[i])]
        top_matches.append({**rows[i], "matched_by": names_by[by], "baseline_share_reaching": float(exceedance[i]),
                            "generated_path": str(generated.paths[i]), "train_path": str(train.paths[sources[by][i]])})
    return MemorizationResult(
        rows=rows,
        thresholds=thresholds,
        share_above=share_above,
        baseline={
            "name": baseline_name,
            "num_clips": len(base_sim),
            "false_positive_rate": false_positive_rate,
            "cross_validation": cross_validation,
            "embedding_similarity_mean": float(np.mean(base_sim)),
            "copy_score_mean": float(np.mean(base_copy.score)),
            "melody_score_mean": float(np.mean(base_copy.melody_score)),
            "residual_snr_db_median": float(np.median(base_copy.residual_snr_db)),
        },
        histograms=histograms,
        top_matches=top_matches,
        settings={
            "detector": detector.describe(),
            "embedder": generated.embedder,
            "headline": ("copies = copy score, melody score or verified residual SNR above its threshold "
                         "(embedding view not included)" if melody_view else
                         "copies = copy score or verified residual SNR above its threshold (embedding view not "
                         "included; melody view off: unpitched material)"),
            "melody_view": melody_view,
            "tempo_normalise": tempo_normalise,
            "notes": notes,
            "num_train": len(train),
        },
    )


def memorization_row(memorization: dict | None) -> dict | None:
    """The compare table's memorization cell: share of copies with its 95% interval, the number of
    clips, and the strongest match (generated file, training file, score)."""
    if not memorization:
        return None
    share = memorization["share_above"]
    low, high = share["copies_ci95"]
    top = memorization["top_matches"][0] if memorization["top_matches"] else None
    return {
        "share": share["copies"], "ci_low": low, "ci_high": high, "clips": len(memorization["per_clip"]),
        "text": f"{share['copies']:.1%} [{low:.1%}, {high:.1%}]",
        "strongest": None if top is None else {k: top[k] for k in ("file", "copy_train_file", "copy_score")},
    }


def aligned_spectrograms(match: dict, seconds: float | None = None):
    """Side-by-side grey mel images (PIL) of a generated clip and of its matched training clip,
    the training clip started at the match's offset, moved by its semitones and tempo ratio so
    that the two line up frame by frame. `match`: a `top_matches` row."""
    import PIL.Image

    from evaluation.audio_io import load_clip
    from music.spectrogram import mel_image
    from music.stretch import pitch_shift, time_stretch

    rate = 16000
    generated, _ = load_clip(match["generated_path"], rate)
    source, _ = load_clip(match["train_path"], rate)
    by_landmarks = match.get("matched_by") == "landmarks"  # then train_path is the landmark view's clip
    start = round(match["landmark_offset_s" if by_landmarks else "copy_offset_s"] * rate) % len(source)
    source = np.roll(np.tile(source, 3), -start)
    ratio = 1.0 if by_landmarks else match.get("tempo_ratio", 1.0)
    length = len(generated) if seconds is None else round(seconds * rate)
    aligned = source[: round(length * ratio) + 1]
    if abs(ratio - 1) > 1e-3:
        aligned = time_stretch(aligned, rate, length)
    aligned = aligned[:length]
    if match.get("semitones") and not by_landmarks:
        aligned = pitch_shift(aligned, rate, match["semitones"])
    left, right = mel_image(generated[None, :length], rate), mel_image(aligned[None], rate)
    gap = 6
    canvas = PIL.Image.new("L", (left.width + gap + right.width, max(left.height, right.height)), 255)
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + gap, 0))
    return canvas
