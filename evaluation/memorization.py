"""Memorization: how close each generated clip is to its nearest training clip.

Two views per generated clip: (1) nearest training clip in embedding space (cosine similarity,
torch matmul; faiss when installed and the training set is large), and (2) a spectrogram-level
copy detector robust to time offset, gain, small pitch shifts and added noise: the maximum over
time lags (and +-1 mel band) of the mean cosine between per-frame-normalised log-mel frames.
Thresholds are calibrated on a held-out-vs-train baseline at a chosen false-positive rate.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from evaluation.audio_io import load_clips
from evaluation.cache import EmbeddingCache
from evaluation.embedding import EmbeddingSet
from evaluation.features import LogMel, limit_threads
from music.audiofolder import file_sha256


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


@dataclass
class CopyMatch:
    """Best spectrogram match of each query: `score` (mean frame cosine, <= 1), key `index`, lag (s)."""

    score: np.ndarray
    index: np.ndarray
    offset_s: np.ndarray


class CopyDetector:
    """Spectrogram copy detector: max normalised cross-correlation of log-mel frames over time lags.

    Features: log-mel (dB) floored at `floor_db` below the clip's loudest bin, minus the clip's mean
    spectrum (so the shared noise floor and stationary timbre do not count as a match), then each
    frame is centred over mel bands and scaled to unit norm. Gain becomes an additive dB constant
    that the centring removes; flat frames become zero vectors that match nothing. For a pair, the
    score at lag tau is the mean of frame cosines over the frames that overlap; only lags leaving
    at least `min_overlap_s` seconds count. `band_shifts` also tries the query shifted by whole mel
    bands, which absorbs pitch shifts of up to about a semitone. All lags come from one FFT per
    set: per-bin complex matmuls over mel bands, so every query is compared with every key.
    """

    version = "copy-1"

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 512,
        n_mels: int = 48,
        floor_db: float = 40.0,
        band_shifts: tuple[int, ...] = (-1, 0, 1),
        min_overlap_s: float = 3.0,
        memory_budget_mb: int = 256,
    ) -> None:
        self.sample_rate = sample_rate
        self.log_mel = LogMel(sample_rate, n_fft, hop_length, n_mels, fmin_hz=30.0)
        self.floor_db = floor_db
        self.band_shifts = band_shifts
        self.min_overlap_s = min_overlap_s
        self.memory_budget_mb = memory_budget_mb

    @property
    def frame_seconds(self) -> float:
        return self.log_mel.hop_length / self.sample_rate

    @property
    def cache_version(self) -> str:
        return (
            f"{self.version}-{self.sample_rate}-{self.log_mel.n_fft}-{self.log_mel.hop_length}"
            f"-{self.log_mel.n_mels}-{self.floor_db}"
        )

    def describe(self) -> dict:
        return {
            "version": self.cache_version,
            "sample_rate_hz": self.sample_rate,
            "frame_s": self.frame_seconds,
            "n_mels": self.log_mel.n_mels,
            "floor_db": self.floor_db,
            "band_shifts": list(self.band_shifts),
            "min_overlap_s": self.min_overlap_s,
        }

    def features(self, waveform: np.ndarray) -> np.ndarray:
        """Mono waveform at `sample_rate` -> `[frames, n_mels]` float32 unit (or zero) frames."""
        with limit_threads(1):
            return self._features(waveform)

    def _features(self, waveform: np.ndarray) -> np.ndarray:
        log_mel = self.log_mel(torch.from_numpy(np.asarray(waveform, dtype=np.float32)))[
            0
        ].T  # [frames, mels]
        log_mel = torch.maximum(log_mel, log_mel.max() - self.floor_db)
        log_mel = log_mel - log_mel.mean(dim=0, keepdim=True)
        centred = log_mel - log_mel.mean(dim=1, keepdim=True)
        norms = centred.norm(dim=1, keepdim=True)
        frames = torch.where(
            norms > 1e-3, centred / norms.clamp_min(1e-3), torch.zeros_like(centred)
        )
        return frames.numpy().astype(np.float32)

    def features_for_files(
        self,
        paths: list[Path],
        cache: EmbeddingCache | None = None,
        progress: bool = True,
        description: str = "copy features",
    ) -> list[np.ndarray]:
        """Features of each file (cached by content hash like embeddings)."""
        out = []
        for path in tqdm(paths, desc=description, unit="clip", disable=not progress):
            content_hash = file_sha256(path) if cache is not None else None
            hit = (
                cache.get(content_hash, "copy-detector", self.cache_version)
                if cache is not None
                else None
            )
            if hit is not None:
                out.append(hit.embedding)
                continue
            waveforms, _ = load_clips([path], self.sample_rate, on_error="raise")
            frames = self.features(waveforms[0])
            if cache is not None:
                cache.put(
                    content_hash,
                    "copy-detector",
                    self.cache_version,
                    frames,
                    len(waveforms[0]) / self.sample_rate,
                )
            out.append(frames)
        return out

    @staticmethod
    def _stack(features: list[np.ndarray], length: int) -> torch.Tensor:
        """`[count, mels, length]` zero-padded."""
        out = torch.zeros(len(features), features[0].shape[1], length)
        for i, frames in enumerate(features):
            out[i, :, : len(frames)] = torch.from_numpy(frames).T
        return out

    def match(
        self,
        queries: list[np.ndarray],
        keys: list[np.ndarray],
        exclude_self: bool = False,
        progress: bool = True,
    ) -> CopyMatch:
        """Best key for every query over all lags and band shifts (exhaustive)."""
        if not queries or not keys:
            raise ValueError("copy detection needs at least one query and one key clip")
        length = max(max(len(f) for f in queries), max(len(f) for f in keys))
        fft_size = 2 * length
        key_lengths = torch.tensor([len(f) for f in keys], dtype=torch.float32)
        key_spec = (
            torch.fft.rfft(self._stack(keys, length), n=fft_size, dim=-1)
            .permute(2, 1, 0)
            .conj()
            .resolve_conj()
            .contiguous()
        )  # [bins, mels, K]
        query_lengths_all = [len(f) for f in queries]
        needed = min(
            max(1.0, self.min_overlap_s / self.frame_seconds),
            0.999 * min(min(query_lengths_all), float(key_lengths.min())),
        )
        lags = torch.arange(fft_size)
        lags = torch.where(
            lags < fft_size // 2 + 1, lags, lags - fft_size
        )  # circular index -> lag in frames
        # only lags that can leave `needed` overlapping frames are ever scored
        keep = torch.nonzero(
            (lags <= max(query_lengths_all) - needed)
            & (lags >= -(float(key_lengths.max()) - needed))
        ).flatten()
        lags = lags[keep].float()
        bytes_per_query = len(keys) * (fft_size + 3 * len(keep)) * 4
        chunk = max(1, int(self.memory_budget_mb * 2**20 // bytes_per_query))
        scores, indices, offsets = [], [], []
        for start in tqdm(
            range(0, len(queries), chunk), desc="copy detection", unit="chunk", disable=not progress
        ):
            block = queries[start : start + chunk]
            query_lengths = torch.tensor([len(f) for f in block], dtype=torch.float32)
            # frames overlapping at lag tau (query frame t + tau aligned with key frame t)
            overlap = torch.minimum(
                query_lengths[:, None, None] - lags.clamp_min(0),
                key_lengths[None, :, None] + lags.clamp_max(0),
            )
            valid = overlap >= needed
            best = torch.full((len(block), len(keys), len(keep)), -float("inf"))
            stacked = self._stack(block, length)
            for shift in self.band_shifts:
                shifted = torch.roll(stacked, shifts=shift, dims=1)
                if shift > 0:
                    shifted[:, :shift] = 0
                elif shift < 0:
                    shifted[:, shift:] = 0
                query_spec = (
                    torch.fft.rfft(shifted, n=fft_size, dim=-1).permute(2, 0, 1).contiguous()
                )  # [bins, Q, mels]
                cross = torch.matmul(query_spec, key_spec)  # [bins, Q, K]
                correlation = torch.fft.irfft(
                    cross.permute(1, 2, 0).contiguous(), n=fft_size, dim=-1
                )[..., keep]  # [Q, K, lags]
                best = torch.maximum(best, correlation)
            mean_cosine = torch.where(
                valid, best / overlap.clamp_min(1.0), torch.full_like(best, -1.0)
            )
            if exclude_self:
                rows = torch.arange(len(block))
                mean_cosine[rows, rows + start] = -1.0
            per_key, lag_index = mean_cosine.max(dim=-1)
            score, index = per_key.max(dim=-1)
            scores.append(score)
            indices.append(index)
            offsets.append(lags[lag_index[torch.arange(len(block)), index]] * self.frame_seconds)
        return CopyMatch(
            torch.cat(scores).numpy(),
            torch.cat(indices).numpy().astype(np.int64),
            torch.cat(offsets).numpy(),
        )


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


def calibrate_threshold(baseline_scores: np.ndarray, false_positive_rate: float = 0.01) -> float:
    """Score above which only `false_positive_rate` of held-out (never trained on) clips fall.

    Needs at least `min_calibration_clips(false_positive_rate)` scores (ValueError otherwise)."""
    baseline_scores = np.asarray(baseline_scores, dtype=np.float64)
    check_calibration_size(len(baseline_scores), false_positive_rate, "the baseline")
    return float(np.quantile(baseline_scores, 1 - false_positive_rate, method="higher"))


def histogram(values: np.ndarray, edges: np.ndarray) -> list[int]:
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    return [int(c) for c in counts]


@dataclass
class MemorizationResult:
    """Per-clip nearest training clips, calibrated thresholds, shares above them, histograms, top matches."""

    rows: list[dict]
    thresholds: dict[str, float]
    share_above: dict[str, float]
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


def memorization_report(
    generated: EmbeddingSet,
    train: EmbeddingSet,
    baseline: EmbeddingSet | None = None,
    detector: CopyDetector | None = None,
    cache: EmbeddingCache | None = None,
    false_positive_rate: float = 0.01,
    top_k: int = 10,
    progress: bool = True,
) -> MemorizationResult:
    """Memorization of `generated` against `train`, calibrated on `baseline` (held-out real clips).

    Without a baseline, thresholds come from train against itself (each clip's nearest *other*
    training clip), which is stricter when the training set holds near-duplicates; a note says so.
    """
    if baseline is not None:
        check_calibration_size(
            len(baseline), false_positive_rate, "the held-out baseline set (--baseline)"
        )
    else:
        check_calibration_size(
            len(train), false_positive_rate, "the training set (calibrated against itself)"
        )
    detector = detector or CopyDetector()
    train_names = train.names()
    notes = []
    # 1. Embedding-space nearest neighbours
    emb_sim, emb_idx = nearest_neighbours(generated.embeddings, train.embeddings)
    # 2. Spectrogram copy detection
    train_features = detector.features_for_files(
        train.paths, cache, progress, "copy features (train)"
    )
    generated_features = detector.features_for_files(
        generated.paths, cache, progress, "copy features (generated)"
    )
    copy = detector.match(generated_features, train_features, progress=progress)
    # 3. Baseline and calibrated thresholds
    if baseline is not None:
        base_sim, _ = nearest_neighbours(baseline.embeddings, train.embeddings)
        base_copy = detector.match(
            detector.features_for_files(
                baseline.paths, cache, progress, "copy features (baseline)"
            ),
            train_features,
            progress=progress,
        ).score
        baseline_name = "held-out vs train"
    else:
        base_sim, _ = nearest_neighbours(
            train.embeddings, train.embeddings, exclude_self=True
        )
        base_copy = detector.match(
            train_features, train_features, exclude_self=True, progress=progress
        ).score
        baseline_name = "train vs rest of train (no held-out set given)"
        notes.append("no held-out baseline: thresholds calibrated on train against itself")
    thresholds = {
        "embedding_similarity": calibrate_threshold(base_sim, false_positive_rate),
        "copy_score": calibrate_threshold(base_copy, false_positive_rate),
    }
    share_above = {
        "embedding_similarity": float(np.mean(emb_sim > thresholds["embedding_similarity"])),
        "copy_score": float(np.mean(copy.score > thresholds["copy_score"])),
        "either": float(
            np.mean(
                (emb_sim > thresholds["embedding_similarity"])
                | (copy.score > thresholds["copy_score"])
            )
        ),
        "baseline_embedding_similarity": float(
            np.mean(base_sim > thresholds["embedding_similarity"])
        ),
        "baseline_copy_score": float(np.mean(base_copy > thresholds["copy_score"])),
    }
    # 4. Per-clip rows, histograms, top matches
    names = generated.names()
    rows = [
        {
            "file": names[i],
            "nearest_train_file": train_names[emb_idx[i]],
            "embedding_similarity": float(emb_sim[i]),
            "copy_train_file": train_names[copy.index[i]],
            "copy_score": float(copy.score[i]),
            "copy_offset_s": float(copy.offset_s[i]),
            "above_threshold": bool(
                emb_sim[i] > thresholds["embedding_similarity"]
                or copy.score[i] > thresholds["copy_score"]
            ),
        }
        for i in range(len(generated))
    ]

    def edges_for(values: np.ndarray, base: np.ndarray, threshold: float) -> np.ndarray:
        low, high = min(values.min(), base.min()), max(values.max(), base.max(), threshold)
        return np.linspace(
            low, high + 0.05 * (high - low) + 1e-6, 31
        )  # room to show the threshold line

    edges = {
        name: edges_for(values, base, threshold)
        for name, values, base, threshold in (
            ("embedding_similarity", emb_sim, base_sim, thresholds["embedding_similarity"]),
            ("copy_score", copy.score, base_copy, thresholds["copy_score"]),
        )
    }
    histograms = {
        "embedding_similarity": {
            "edges": edges["embedding_similarity"].tolist(),
            "generated": histogram(emb_sim, edges["embedding_similarity"]),
            "baseline": histogram(base_sim, edges["embedding_similarity"]),
        },
        "copy_score": {
            "edges": edges["copy_score"].tolist(),
            "generated": histogram(copy.score, edges["copy_score"]),
            "baseline": histogram(base_copy, edges["copy_score"]),
        },
    }
    order = np.argsort(-copy.score, kind="stable")[:top_k]
    top_matches = [
        {
            **rows[i],
            "generated_path": str(generated.paths[i]),
            "train_path": str(train.paths[copy.index[i]]),
        }
        for i in order
    ]
    return MemorizationResult(
        rows=rows,
        thresholds=thresholds,
        share_above=share_above,
        baseline={
            "name": baseline_name,
            "num_clips": len(base_sim),
            "false_positive_rate": false_positive_rate,
            "embedding_similarity_mean": float(np.mean(base_sim)),
            "copy_score_mean": float(np.mean(base_copy)),
        },
        histograms=histograms,
        top_matches=top_matches,
        settings={
            "detector": detector.describe(),
            "embedder": generated.embedder,
            "notes": notes,
            "num_train": len(train),
        },
    )
