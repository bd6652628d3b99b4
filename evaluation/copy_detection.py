"""Copy detection robust to musical transforms: is a clip a (changed) copy of a training clip, which
one, and how was it changed?

A copy may be started at another point (a time offset, or a loop rotated by part of a bar), played
up to +-2 semitones higher or lower, 6% faster or slower, louder or quieter, under noise, through a
low-pass filter, or mixed under other material. The detector follows cover-song and sample
identification practice (Serra et al. 2008, Bertin-Mahieux & Ellis 2012): a semitone spectrogram
(one bin per semitone, so a pitch shift is a shift along the bins), per-band onset envelopes for
rhythm, and pitch-class (chroma) frames for melody and harmony, compared by 2-D cross-correlation
over (time lag x pitch shift) at a small set of tempo ratios. Keys are tiled twice in time, so a
circular rotation of a loop is an ordinary lag.

Two stages keep it fast for hundreds of clips against thousands of training clips:
1. shortlist: transposition-invariant frames (magnitudes of the chroma DFT, and band onset
   envelopes), smoothed over ~200 ms and kept at 8 frames per second, correlated with every key at
   every lag in one FFT matmul and divided by the norms of the query piece and of the key frames
   under it (a cosine, copy-6: the raw correlation let sparse keys, whose z-scored onsets spike,
   crowd a copy's own source out); the `shortlist` best keys per query go on.
2. alignment: for each shortlisted key, every lag x pitch shift x tempo ratio at 31 frames per
   second; the best alignment is then refined at four phases of the hop (8 ms apart, so a copy
   started part of a frame off still lines up) with a two-piece cut (a rotated loop), leaving out
   the frames at the clip's edges and at the cut; it gives the score, the offset, the semitones,
   the tempo ratio and the gain.

3. verification (`verify`, `evaluation.copy_verification`): the `verify_candidates` best keys of
   the alignment are checked on the waveform (the key put through the estimated transform, and
   through none; aligned to the sample; fitted through a 33-tap FIR filter, copy-5; copy-4 fitted one gain per bin): the
   residual SNR in dB says how much of the query the key explains (its median over 0.5 s segments,
   the steady SNR, is reported beside it). copy-7: a candidate estimated pitch-shifted with no tempo
   change is also checked by cutting the training clip where the query starts and shifting only that
   excerpt (`recut_shift`: a phase vocoder's output depends on where its input starts); copy-8 finds
   that start on per-bin magnitudes and also tries the transpositions other parts of the query are
   aligned at (`recut_semitones`). The demo
   corpus's held-out clips include near-twins of training clips (same template and kit) that the
   spectral score cannot tell from copies; on the waveform they leave 1-6 dB, a copy under 15 dB
   noise ~15 dB.

With `separate` (default), each query is also matched by its harmonic and its percussive part
(median-filtering HPSS on the semitone power), and keeps the best: a copy mixed under other material
(a melody under drums, drums under a band) stands out in the part the other material lacks.

The copy score is the mean frame cosine of the spectral view (1 is an exact match, never above);
the rhythm view (band onsets) helps pick the shortlist and may be weighted in (`spectral_weight`).
Thresholds are not fixed here but calibrated on held-out clips (`evaluation.memorization`).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from evaluation.audio_io import load_clips
from evaluation.cache import EmbeddingCache
from evaluation.copy_landmarks import LandmarkIndex, landmark_candidates, landmark_settings, make_landmark_index
from evaluation.copy_verification import CopyVerifier, steady_snr_db
from evaluation.features import limit_threads
from music.audiofolder import file_sha256

LOWEST_MIDI = 36  # C2, 65.4 Hz
NUM_SEMITONES = 84  # C2 .. B8 (7.9 kHz, just under Nyquist at 16 kHz)
CHROMA_TOP_MIDI = 96  # pitch classes from notes below C7 (2.1 kHz): harmonics above blur them
BAND_EDGES = (0, 12, 24, 36, 48, 60, 72, 84)  # octave bands of the semitone spectrogram for rhythm
FLOOR_DB = 50.0  # bins more than this below the clip's loudest bin count as silence
RHYTHM_FLOOR_DB = 40.0  # a band's onsets count down to this far below its loudest frame
REFERENCE_BPM = 120.0  # tempo-normalised features put every clip at this tempo


def semitone_filterbank(sample_rate: int, n_fft: int) -> np.ndarray:
    """`[NUM_SEMITONES, n_fft // 2 + 1]` triangular weights, one filter per equal-tempered semitone.

    Written here because librosa's CQT took ~3 s per 5 s clip on the shared CPU against 30 ms for
    an STFT; below ~130 Hz the FFT bins are wider than a semitone, so the lowest filters fall
    back to their nearest bin.
    """
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    with np.errstate(divide="ignore"):
        pitch = 12 * np.log2(np.maximum(freqs, 1e-6) / 440.0) + 69
    bank = np.zeros((NUM_SEMITONES, len(freqs)), dtype=np.float32)
    for row in range(NUM_SEMITONES):
        midi = LOWEST_MIDI + row
        bank[row] = np.maximum(0.0, 1.0 - np.abs(pitch - midi))
        if bank[row].sum() == 0:
            bank[row, np.argmin(np.abs(pitch - midi))] = 1.0
    return bank


PARTS = ("mix", "harmonic", "percussive")  # what of a query is matched: all of it, or one HPSS part
HPSS_KERNEL = (31, 13)  # median filters of the separation: 31 frames (~250 ms at 8 ms) x 13 semitones


def separate_part(frames: np.ndarray, part: str) -> np.ndarray:
    """`[frames, semitones]` dB (as `CopyDetector.features` returns) -> the same of one part of the
    sound: "mix" (unchanged), "harmonic" (sustained pitches) or "percussive" (broadband onsets), by
    median-filtering harmonic/percussive separation (Fitzgerald 2010, librosa's hpss with soft masks)
    on the semitone power. A copy mixed under other material (drums under a band, a melody under
    drums) stands out in the part that the other material lacks."""
    if part == "mix":
        return frames
    if part not in PARTS:
        raise ValueError(f"part={part!r}: expected one of {PARTS}")
    import librosa  # here: only queries that are separated need it

    power = np.power(10.0, np.asarray(frames, dtype=np.float64).T / 10)  # [semitones, frames]
    harmonic, percussive = librosa.decompose.hpss(power, kernel_size=HPSS_KERNEL, power=2.0)
    kept = harmonic if part == "harmonic" else percussive
    return (10 * np.log10(np.maximum(kept, 1e-10))).T.astype(np.float32)


@dataclass
class CopyMatch:
    """Best match of each query clip among the keys (arrays of length `queries`).

    `score`: copy score (mean of spectral and rhythm similarity at the best alignment, <= 1);
    `index`: best key; `offset_s`: where in the key (seconds, modulo its length) the query starts;
    `semitones`: pitch of the query relative to the key; `tempo_ratio`: query tempo / key tempo;
    `gain_db`: query level - key level over the aligned frames; `melody_score`, `melody_index`,
    `melody_semitones`: the best transposition-invariant chroma match (any of 12 transpositions);
    `part`: which part of the query matched best ("mix": all of it, "harmonic" / "percussive": its
    HPSS part, for a copy mixed under other material). After `CopyDetector.verify`:
    `residual_snr_db`: how much of the query the best verified candidate explains (waveform residual
    SNR in dB, `evaluation.copy_verification`); `steady_residual_snr_db`: that candidate's median
    over 0.5 s segments, never above the whole clip's (`steady_snr_db`; reported, not decided on:
    see the README); `verified_index`, `verified_semitones`,
    `verified_tempo_ratio`: that candidate and its transform; `residual_by_fit`: `{filter taps:
    [queries] dB}`, the best residual SNR of every fit the verifier computes (0 taps: one complex
    gain per bin, copy-4's fit), for comparisons, and `verified_index_by_fit` the key each names;
    `candidate_residuals`: per query `[key, dB]` of every verified candidate, in the search's order;
    `residual_segments`: per query `[segments, 2]` dB, the query's energy and the best fit's residual
    in each 0.5 s (`CopyVerifier` time profile). `candidates` holds every aligned key, best first;
    `verify` checks the first `verify_candidates`. After `CopyDetector.match_landmarks` (the optional
    landmark view, `evaluation.copy_landmarks`): `landmark_index` (of the clips whose peak-pair hashes
    agree most on one offset, the one whose peaks cancel most, -1: no hash in common), `landmark_offset_s` (where in it
    the query starts, seconds) and `landmark_score` (the share, 0-1, of that clip's own peaks whose
    cells lose more than 10 dB when it is subtracted from the query).
    """

    score: np.ndarray
    index: np.ndarray
    offset_s: np.ndarray
    semitones: np.ndarray
    tempo_ratio: np.ndarray
    gain_db: np.ndarray
    melody_score: np.ndarray
    melody_index: np.ndarray
    melody_semitones: np.ndarray
    part: np.ndarray
    candidates: np.ndarray | None = None
    residual_snr_db: np.ndarray | None = None
    verified_index: np.ndarray | None = None
    verified_semitones: np.ndarray | None = None
    verified_tempo_ratio: np.ndarray | None = None
    residual_by_fit: dict[int, np.ndarray] | None = None
    verified_index_by_fit: dict[int, np.ndarray] | None = None
    residual_segments: np.ndarray | None = None
    candidate_residuals: np.ndarray | None = None
    steady_residual_snr_db: np.ndarray | None = None
    landmark_score: np.ndarray | None = None
    landmark_index: np.ndarray | None = None
    landmark_offset_s: np.ndarray | None = None


# `candidates` (per query: (key, semitones, tempo ratio, score) of the best few keys) come from the
# search; the rest from the verification stage (`CopyDetector.verify`) and the landmark view
# (`CopyDetector.match_landmarks`)
VERIFY_FIELDS = ("candidates", "residual_snr_db", "verified_index", "verified_semitones", "verified_tempo_ratio",
                 "residual_by_fit", "verified_index_by_fit", "residual_segments", "candidate_residuals",
                 "steady_residual_snr_db", "landmark_score", "landmark_index", "landmark_offset_s")


def _smooth_time(x: torch.Tensor, width: int) -> torch.Tensor:
    """Moving average over the last (time) axis of `[..., frames]`, same length."""
    if width <= 1:
        return x
    shape = x.shape
    flat = x.reshape(-1, 1, shape[-1])
    out = F.avg_pool1d(F.pad(flat, (width // 2, width - 1 - width // 2), mode="replicate"), width, 1)
    return out.reshape(shape)


def _blur(x: torch.Tensor) -> torch.Tensor:
    """`[dims, frames]` blurred over time by [1, 2, 1] / 4, so that a copy started half a frame
    (16 ms) off still lines up its onsets."""
    kernel = torch.tensor([[[0.25, 0.5, 0.25]]])
    return F.conv1d(F.pad(x[:, None], (1, 1), mode="replicate"), kernel)[:, 0]


def _unit_frames(x: torch.Tensor) -> torch.Tensor:
    """`[..., dims, frames]`: every frame centred over dims and scaled to unit norm (flat -> 0)."""
    centred = x - x.mean(dim=-2, keepdim=True)
    norms = centred.norm(dim=-2, keepdim=True)
    return torch.where(norms > 1e-3, centred / norms.clamp_min(1e-3), torch.zeros_like(centred))


def _zscore_time(x: torch.Tensor) -> torch.Tensor:
    """`[..., frames]` centred and scaled to unit variance over time (constant -> 0)."""
    centred = x - x.mean(dim=-1, keepdim=True)
    std = centred.std(dim=-1, keepdim=True)
    return torch.where(std > 1e-4, centred / std.clamp_min(1e-4), torch.zeros_like(centred))


def _resample_time(x: torch.Tensor, ratio: float) -> torch.Tensor:
    """`[dims, frames]` stretched in time by `ratio` (a clip played `ratio` times faster gets
    `ratio` times more frames back, i.e. the tempo it had before the change)."""
    if abs(ratio - 1.0) < 1e-6:
        return x
    frames = max(2, round(x.shape[-1] * ratio))
    return F.interpolate(x[None], size=frames, mode="linear", align_corners=False)[0]


def cross_correlate(queries: torch.Tensor, keys: torch.Tensor, memory_mb: int = 256) -> torch.Tensor:
    """Sum over dims of the cross-correlation of every query with every key at every lag.

    `queries [Q, D, Tq]`, `keys [K, D, Tk]` -> `[Q, K, Tq + Tk - 1]`; index `j` is the lag
    `j - (Tq - 1)`: query frame `t` lies on key frame `t + lag`. One FFT per clip, then per frequency
    bin a complex matmul over dims, so all pairs cost one batched matmul.
    """
    q_len, k_len = queries.shape[-1], keys.shape[-1]
    size = q_len + k_len - 1
    fft_size = 1 << (size - 1).bit_length()
    key_spec = torch.fft.rfft(keys, n=fft_size, dim=-1).permute(2, 1, 0).contiguous()  # [bins, D, K]
    per_query = keys.shape[0] * (fft_size + size) * 8
    chunk = max(1, int(memory_mb * 2**20 // max(per_query, 1)))
    out = []
    for start in range(0, queries.shape[0], chunk):
        block = torch.flip(queries[start : start + chunk], dims=[-1])  # correlation = convolution with reversed query
        query_spec = torch.fft.rfft(block, n=fft_size, dim=-1).permute(2, 0, 1).contiguous()  # [bins, Q, D]
        product = torch.matmul(query_spec, key_spec).permute(1, 2, 0)  # [Q, K, bins]
        out.append(torch.fft.irfft(product, n=fft_size, dim=-1)[..., :size])
    return torch.cat(out)


def _overlaps(q_len: int, k_len: int) -> torch.Tensor:
    """Frames in common at each lag of `cross_correlate` for lengths `q_len`, `k_len`."""
    lags = torch.arange(q_len + k_len - 1) - (q_len - 1)
    return (torch.minimum(torch.tensor(q_len), k_len - lags) - torch.clamp(-lags, min=0)).clamp_min(0).float()


@dataclass
class VerifiedBest:
    """What verification keeps per query while it tries candidates and transforms (`CopyDetector.verify`
    and `add_recut` fill it the same way): the best residual SNR of every fit with its key, the best
    verified candidate with its transform, time profile and steady SNR, and each candidate's best."""

    snr: np.ndarray
    steady: np.ndarray
    by_fit: dict[int, np.ndarray]
    index_by_fit: dict[int, np.ndarray]
    index: np.ndarray
    semitones: np.ndarray
    ratio: np.ndarray
    segments: np.ndarray
    per_candidate: np.ndarray

    def keep(self, q: int, c: int, key: int, semitones: float, ratio: float, fits: dict[int, float],
             waveform: float, segments: np.ndarray | None, steady: float | None = None) -> None:
        """One tried fit of query `q` against its `c`-th verified candidate `key` under a transform
        (semitones, tempo ratio): every best it beats moves to it. `waveform`: its residual SNR (dB) at
        the verifier's filter length; `steady`: its steady SNR (None: from `segments`, when it is kept)."""
        for taps, value in fits.items():
            if value > self.by_fit[taps][q]:
                self.by_fit[taps][q], self.index_by_fit[taps][q] = value, key
        if waveform > self.snr[q]:
            self.snr[q], self.index[q], self.semitones[q], self.ratio[q] = waveform, key, semitones, ratio
            self.segments[q] = segments
            self.steady[q] = steady_snr_db(segments, waveform) if steady is None else steady
        self.per_candidate[q][c][1] = max(self.per_candidate[q][c][1], waveform)

    def into(self, match: CopyMatch) -> CopyMatch:
        """`match` with the verification fields set from what was kept."""
        return dataclasses.replace(match, residual_snr_db=self.snr, verified_index=self.index,
                                   verified_semitones=self.semitones, verified_tempo_ratio=self.ratio,
                                   residual_by_fit=self.by_fit, verified_index_by_fit=self.index_by_fit,
                                   residual_segments=self.segments, candidate_residuals=self.per_candidate,
                                   steady_residual_snr_db=self.steady)


class CopyDetector:
    """Transform-robust copy detector (see the module docstring); `features` per clip are cached,
    `match` finds the best training clip of each query and the transform that maps one to the other.

    Args:
        sample_rate: Hz the clips are decoded at.
        n_fft, hop_length: STFT in samples (2048 / 512 at 16 kHz: 128 ms windows, 32 ms frames).
        semitone_shifts: pitch shifts tried by the alignment stage (query relative to key).
        tempo_ratios: tempo changes tried (query tempo / key tempo), both stages.
        min_overlap_s: shortest aligned stretch in seconds that counts (shorter clips: their length).
        shortlist: keys per query that the alignment stage examines.
        shortlist_cosine: rank the shortlist by cosine (copy-6); False: by the raw correlation (copy-5).
        recut_shift: verify a pitch-shifted candidate also by shifting only the excerpt the query starts
            on (`CopyVerifier.recut_shift`), at its own transposition and at any other one a part of the
            query is aligned at (`recut_semitones`); copy-8, the default; False: the copy-6 verification.
        spectral_weight: weight of the spectral view in the copy score (the rest is rhythm, whose
            time-normalised correlation can pass 1 on busy keys; 1.0 measured best, see the README).
        memory_budget_mb: working memory of one batched FFT correlation.
        phases: the refinement tries the query at this many phases of the hop (features are kept
            every `hop_length / phases` samples).
        edge_frames, cut_gap_frames: query frames left out of the score at each edge and at the
            cut of a two-piece alignment.
        blur: blur the spectral and rhythm views over 3 frames (tolerates a few ms of timing).
        separate: also match each query's harmonic and percussive part (HPSS), keep the best.
        verify_candidates: keys per query (the search's best) that `verify` checks on the waveform.
        filter_taps: length (samples) of the FIR filter through which the verification fits the key
            to the query (0: one complex gain per frequency bin, copy-4).
        compare_taps: other fits the verification also reports (`CopyMatch.residual_by_fit`).
        landmarks: also score each query by landmark fingerprints (`match_landmarks`,
            `evaluation.copy_landmarks`): finds some copies mixed under louder material; off by
            default (README: short of the target, and its flags add to the false positives).
    """

    version = "copy-8"  # copy-6 plus the recut of pitch-shifted candidates (`recut_shift`; copy-7's recut started
    # on amplitude envelopes and only at the candidate's own transposition)
    features_version = "copy-3"  # the cached features are unchanged since copy-3

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 2048,
        hop_length: int = 512,
        semitone_shifts: tuple[int, ...] = (-2, -1, 0, 1, 2),
        tempo_ratios: tuple[float, ...] = (0.94, 0.97, 1.0, 1.03, 1.06),
        min_overlap_s: float = 3.0,
        shortlist: int = 16,
        spectral_weight: float = 1.0,
        memory_budget_mb: int = 256,
        phases: int = 4,
        edge_frames: int = 2,
        cut_gap_frames: int = 6,
        blur: bool = True,
        separate: bool = True,
        verify_candidates: int = 4,
        filter_taps: int = 33,
        compare_taps: tuple[int, ...] = (),
        shortlist_cosine: bool = True,
        recut_shift: bool = True,
        landmarks: bool = False,
    ) -> None:
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.semitone_shifts = tuple(int(s) for s in semitone_shifts)
        self.tempo_ratios = tuple(float(r) for r in tempo_ratios)
        self.min_overlap_s = min_overlap_s
        self.shortlist = shortlist
        self.spectral_weight = spectral_weight
        self.memory_budget_mb = memory_budget_mb
        if phases < 1 or hop_length % phases:
            raise ValueError(f"phases={phases} must be >= 1 and divide hop_length={hop_length}")
        self.phases = phases
        self.edge_frames = edge_frames
        self.cut_gap_frames = cut_gap_frames
        self.blur = blur
        self.separate = separate
        self.verify_candidates = verify_candidates
        self.shortlist_cosine = shortlist_cosine
        self.verifier = CopyVerifier(sample_rate, filter_taps=filter_taps, compare_taps=compare_taps,
                                     recut_shift=recut_shift)
        self.landmarks = landmarks
        self._landmark_index: tuple[Callable, int, LandmarkIndex] | None = None  # (key_audio, keys, index)
        self._bank = torch.from_numpy(semitone_filterbank(sample_rate, n_fft))
        self._window = torch.hann_window(n_fft)

    @property
    def frame_seconds(self) -> float:
        return self.hop_length / self.sample_rate

    @property
    def cache_version(self) -> str:
        frame = self.hop_length // self.phases
        return f"{self.features_version}-{self.sample_rate}-{self.n_fft}-{frame}-{NUM_SEMITONES}"

    def describe(self) -> dict:
        return {
            "version": self.version if self.verifier.recut_shift else "copy-6",  # copy-6: the same without the recut
            "features": self.cache_version,
            "sample_rate_hz": self.sample_rate,
            "frame_s": self.frame_seconds,
            "semitone_shifts": list(self.semitone_shifts),
            "tempo_ratios": list(self.tempo_ratios),
            "min_overlap_s": self.min_overlap_s,
            "shortlist": self.shortlist,
            "spectral_weight": self.spectral_weight,
            "phases": self.phases,
            "edge_frames": self.edge_frames,
            "cut_gap_frames": self.cut_gap_frames,
            "blur": self.blur,
            "separate": self.separate,
            "verify_candidates": self.verify_candidates,
            "shortlist_cosine": self.shortlist_cosine,
            "verification": self.verifier.describe(),
            **({"landmarks": landmark_settings()} if self.landmarks else {}),
        }

    # ----------------------------------------------------------------------------------- features
    def features(self, waveform: np.ndarray) -> np.ndarray:
        """Mono waveform at `sample_rate` -> `[frames, NUM_SEMITONES]` float32 semitone power in dB
        re. full scale (floored at -100 dB), one frame every `hop_length / phases` samples. Every view
        the matcher uses is derived from it: keys at phase 0 (every `phases`-th frame), queries at
        every phase, so a copy started part of a hop off still lines up within `hop / phases`."""
        with limit_threads(1):
            audio = torch.from_numpy(np.asarray(waveform, dtype=np.float32))
            if len(audio) < self.n_fft:
                audio = F.pad(audio, (0, self.n_fft - len(audio)))
            spec = torch.stft(audio, self.n_fft, self.hop_length // self.phases, window=self._window,
                              return_complex=True)
            power = self._bank @ (spec.abs() ** 2) / (self._window.sum() ** 2 / 4)
            return (10 * torch.log10(power.clamp_min(1e-10))).T.contiguous().numpy().astype(np.float32)

    def features_for_files(
        self,
        paths: list[Path],
        cache: EmbeddingCache | None = None,
        progress: bool = True,
        description: str = "copy features",
    ) -> list[np.ndarray]:
        """Features of each file, cached by content hash (SHA-256) + detector version."""
        out = []
        for path in tqdm(paths, desc=description, unit="clip", disable=not progress):
            content_hash = file_sha256(path) if cache is not None else None
            hit = cache.get(content_hash, "copy-detector", self.cache_version) if cache is not None else None
            if hit is not None:
                out.append(hit.embedding)
                continue
            waveforms, _ = load_clips([path], self.sample_rate, on_error="raise")
            frames = self.features(waveforms[0])
            if cache is not None:
                cache.put(content_hash, "copy-detector", self.cache_version, frames,
                          len(waveforms[0]) / self.sample_rate)
            out.append(frames)
        return out

    # -------------------------------------------------------------------------------------- views
    def _views(self, frames: np.ndarray, bpm: float | None = None, phase: int = 0) -> dict[str, torch.Tensor]:
        """The matcher's views of one clip's features (time last) at one phase of the hop (frames
        `phase`, `phase + phases`, ...), optionally put at REFERENCE_BPM."""
        db = torch.from_numpy(np.asarray(frames[phase :: self.phases], dtype=np.float32)).T  # [semitones, frames]
        if bpm:
            db = _resample_time(db, bpm / REFERENCE_BPM)
        level = db.max()
        rel = torch.maximum(db - level, torch.tensor(-FLOOR_DB))  # gain -> nothing
        # spectral: the clip's mean spectrum removed (stationary timbre, noise floor), blurred in time
        # like the onsets below, unit frames
        spectral = _unit_frames(self._maybe_blur(rel - rel.mean(dim=-1, keepdim=True)))
        # rhythm: onset strength (rising dB) of each octave band's power, z-scored over time; summing a
        # band's power before the log keeps stationary noise from making onsets of its own
        power = torch.pow(10.0, rel / 10)
        band_db = torch.stack([10 * torch.log10(power[lo:hi].sum(0) + 1e-10)
                               for lo, hi in itertools.pairwise(BAND_EDGES)])
        band_db = torch.maximum(band_db, band_db.max(dim=-1, keepdim=True).values - RHYTHM_FLOOR_DB)
        flux = F.pad(torch.clamp(band_db[:, 1:] - band_db[:, :-1], min=0), (1, 0))
        rhythm = _zscore_time(self._maybe_blur(flux))
        # chroma: pitch classes of notes below CHROMA_TOP_MIDI, log, unit frames
        top = CHROMA_TOP_MIDI - LOWEST_MIDI
        chroma = power[:top].reshape(top // 12, 12, -1).sum(0)
        chroma = _unit_frames(_smooth_time(torch.log10(chroma + 10 ** (-FLOOR_DB / 10) * 12), 3))
        energy = 10 * torch.log10(torch.pow(10.0, db / 10).sum(0).clamp_min(1e-10))  # frame level, dB
        return {"spectral": spectral, "rhythm": rhythm, "chroma": chroma, "energy": energy}

    def _maybe_blur(self, x: torch.Tensor) -> torch.Tensor:
        return _blur(x) if self.blur else x

    @staticmethod
    def _shortlist_frames(views: dict[str, torch.Tensor]) -> torch.Tensor:
        """Transposition-invariant `[dims, frames]` at 1/4 of the frame rate: |DFT| of chroma over
        the 12 pitch classes (a transposition is a phase), and band onset envelopes, smoothed."""
        chroma_dft = torch.fft.rfft(views["chroma"], dim=0).abs()[1:]  # [6, frames]; DC is 0 (centred)
        rhythm = _smooth_time(views["rhythm"], 3)
        both = torch.cat([_unit_frames(_smooth_time(chroma_dft, 6)), 0.5 * _zscore_time(rhythm)])
        frames = both.shape[-1] // 4 * 4
        if frames == 0:
            return both
        return F.avg_pool1d(both[None, :, :frames], 4, 4)[0]

    def _needed(self, q_len: int, k_len: int, frame_s: float) -> int:
        return max(1, min(round(self.min_overlap_s / frame_s), int(0.9 * q_len), int(0.9 * k_len)))

    # ------------------------------------------------------------------------------------ matching
    def match(
        self,
        queries: list[np.ndarray],
        keys: list[np.ndarray],
        exclude_self: bool = False,
        progress: bool = True,
        query_bpm: list[float | None] | None = None,
        key_bpm: list[float | None] | None = None,
    ) -> CopyMatch:
        """Best key of every query and the transform between them (shortlist, then alignment).

        `exclude_self` ignores key i for query i (a set against itself). `query_bpm` / `key_bpm`
        (tempo of each clip, e.g. from metadata) put both sets at one tempo first, so a model that
        renders a training loop at another tempo still lines up; `tempo_ratio` then includes it.
        """
        if not queries or not keys:
            raise ValueError("copy detection needs at least one query and one key clip")
        query_bpm = query_bpm or [None] * len(queries)
        key_bpm = key_bpm or [None] * len(keys)
        if len(query_bpm) != len(queries) or len(key_bpm) != len(keys):
            raise ValueError("query_bpm / key_bpm need one tempo (or None) per clip")
        with limit_threads(1):
            return self._match(queries, keys, exclude_self, progress, query_bpm, key_bpm)

    def verify(self, queries: list[np.ndarray], match: CopyMatch, key_audio: Callable[[int], np.ndarray],
               progress: bool = True) -> CopyMatch:
        """The verification stage: each query's `verify_candidates` best keys (from `match`) checked on
        the signal (`CopyVerifier.residual_snr_db`: the key put through the estimated transform,
        aligned to the sample, fitted per frequency bin); keeps the best residual SNR (dB).

        `queries`: the query waveforms at `sample_rate` (mono, in the order `match` saw them);
        `key_audio(i)`: waveform of key clip i. Returns `match` with the verification fields set."""
        if match.candidates is None or len(match.candidates) != len(queries):
            raise ValueError("verify needs the CopyMatch that match() returned for these queries")
        best = VerifiedBest(
            snr=np.zeros(len(queries)),  # 0 dB: explains nothing (a silent query stays there)
            steady=np.zeros(len(queries)), by_fit={taps: np.zeros(len(queries)) for taps in self.verifier.fits},
            index_by_fit={taps: match.index.copy() for taps in self.verifier.fits}, index=match.index.copy(),
            semitones=match.semitones.astype(float).copy(), ratio=match.tempo_ratio.astype(float).copy(),
            segments=np.empty(len(queries), dtype=object), per_candidate=np.empty(len(queries), dtype=object))
        taps = self.verifier.filter_taps
        with limit_threads(1):
            for q, query in enumerate(tqdm(queries, desc="copy verification", unit="clip", disable=not progress)):
                verified = match.candidates[q][: self.verify_candidates]
                best.per_candidate[q] = [[int(key), 0.0] for key, *_ in verified]
                per_part = self.part_transforms(query, [int(c[0]) for c in verified], key_audio)
                for c, (key, shift, tempo, _) in enumerate(verified):
                    # the estimated transform, and none (the search's tempo or pitch may be off by a
                    # step for an unchanged copy; trying it costs no Rubber Band)
                    for variant in dict.fromkeys([(float(shift), float(tempo)), (0.0, 1.0)]):
                        result = self.verifier.residual_snr_db(query, key_audio(int(key)), *variant)
                        best.keep(q, c, key, *variant, result["fits"], result["waveform"], result["segments"],
                                  result["steady"])
                    # the recut at the transpositions other parts of the query are aligned at (its own
                    # ran above, inside `residual_snr_db`)
                    own = [float(shift)] if self.verifier.recut_applies(float(shift), float(tempo)) else []
                    for other in self.recut_semitones(per_part, c, own):
                        fits, profile = self.verifier.recut_fits(query, key_audio(int(key)), other)
                        best.keep(q, c, key, other, 1.0, fits, fits[taps], profile)
        return best.into(match)

    def candidate_transforms(self, query: np.ndarray, keys: list[np.ndarray]) -> list[list[tuple[float, float, float]]]:
        """The alignment stage of `match` for one query (features) against the given keys only:
        `[part][key]` (score, semitones, tempo ratio), one row per part `match` tries (`PARTS`, or the
        whole clip without `separate`), as `match` ranks a key on that part's shortlist (each key's
        alignment is its own: the other keys do not change it). For re-reading the transforms of a
        stored run's candidates (`match` keeps the best part of each, by score) without the shortlist
        over every training clip."""
        parts = PARTS if self.separate else PARTS[:1]
        out = []
        with limit_threads(1):
            key_views = [self._views(k) for k in keys]
            for part in parts:
                frames = separate_part(query, part)
                views = {**self._views(frames), "phases": [self._views(frames, None, p) for p in range(1, self.phases)]}
                ranked = self._align(views, key_views)["ranked"]
                by_key = {k: (score, shift, ratio) for score, k, shift, ratio in ranked}
                out.append([by_key[k] for k in range(len(keys))])
        return out

    def part_transforms(self, query: np.ndarray, keys: list[int],
                        key_audio: Callable[[int], np.ndarray]) -> list[list[tuple[float, float, float]]] | None:
        """`candidate_transforms` of the query (waveform) against training clips `keys` (their waveforms
        from `key_audio`): `[part][key]` (score, semitones, tempo ratio); None without the recut (nothing
        uses it then) or without keys."""
        if not self.verifier.recut_shift or not keys:
            return None
        return self.candidate_transforms(self.features(query), [self.features(key_audio(k)) for k in keys])

    def recut_semitones(self, per_part: list[list[tuple[float, float, float]]] | None, candidate: int,
                        own: list[float]) -> list[float]:
        """The transpositions the recut also tries for verified candidate number `candidate`: every one at
        which a part of the query (`PARTS`: whole, harmonic, percussive; `per_part` as `part_transforms`
        gives it) is aligned with that key with no tempo change, other than `own` (the candidate's own,
        already tried) and 0. The search keeps a key's best part, whose transposition may be a step off
        on a clip that sounds alike a step apart (a drum loop), while another part has it right."""
        if per_part is None:
            return []
        out = [float(part[candidate][1]) for part in per_part
               if self.verifier.recut_applies(float(part[candidate][1]), float(part[candidate][2]))]
        return [s for s in dict.fromkeys(out) if s not in own]

    def add_recut(self, queries: list[np.ndarray], match: CopyMatch, key_audio: Callable[[int], np.ndarray],
                  progress: bool = True, per_part: list | None = None) -> CopyMatch:
        """`match` verified without the recut (by `verify` of a detector with `recut_shift` off, or the
        same fields read back from a stored run) -> the verification with it, as `verify` of this
        detector (`recut_shift` on) gives it, at the cost of the recut alone.

        The recut only ever raises a candidate's fit (`CopyVerifier.residual_snr_db` keeps the larger
        of the whole-clip shift's and the recut's value, fit by fit) and only runs for candidates
        whose estimated transform it applies to (`CopyVerifier.recut_applies`: semitones, tempo
        ratio 1; none for most held-out clips). So each of those candidates is checked by the recut
        alone (`CopyVerifier.recut_fits`) and every best (per fit, per candidate, the clip's) becomes
        the larger of the stored and the recut value; the verified candidate, its transform and time
        profile move to the recut's where it is larger. Same scores as `verify` but for exact ties."""
        if not self.verifier.recut_shift:
            raise ValueError("add_recut needs a detector with recut_shift=True")
        needed = ("candidates", "residual_snr_db", "residual_by_fit", "candidate_residuals", "residual_segments",
                  "steady_residual_snr_db")
        missing = [name for name in needed if getattr(match, name) is None]
        if missing or len(match.candidates) != len(queries):
            raise ValueError(f"add_recut needs a verified CopyMatch of these {len(queries)} queries "
                             f"(missing: {', '.join(missing) or 'none'})")
        if set(match.residual_by_fit) != set(self.verifier.fits):
            raise ValueError(f"the stored fits {sorted(match.residual_by_fit)} are not this verifier's "
                             f"{sorted(self.verifier.fits)}")
        taps = self.verifier.filter_taps
        best = VerifiedBest(
            snr=match.residual_snr_db.astype(float).copy(), steady=match.steady_residual_snr_db.astype(float).copy(),
            by_fit={t: v.astype(float).copy() for t, v in match.residual_by_fit.items()},
            index_by_fit={t: v.copy() for t, v in match.verified_index_by_fit.items()},
            index=match.verified_index.copy(), semitones=match.verified_semitones.astype(float).copy(),
            ratio=match.verified_tempo_ratio.astype(float).copy(), segments=match.residual_segments.copy(),
            per_candidate=np.empty(len(queries), dtype=object))
        with limit_threads(1):
            for q, query in enumerate(tqdm(queries, desc="copy recut", unit="clip", disable=not progress)):
                best.per_candidate[q] = [list(pair) for pair in match.candidate_residuals[q]]
                verified = match.candidates[q][: self.verify_candidates]
                parts = per_part[q] if per_part is not None and per_part[q] is not None else \
                    self.part_transforms(query, [int(c[0]) for c in verified], key_audio)
                for c, (key, shift, tempo, _) in enumerate(verified):
                    own = [float(shift)] if self.verifier.recut_applies(float(shift), float(tempo)) else []
                    for semis in own + self.recut_semitones(parts, c, own):
                        fits, profile = self.verifier.recut_fits(query, key_audio(int(key)), semis)
                        best.keep(q, c, key, semis, 1.0, fits, fits[taps], profile)
        return best.into(match)

    def match_landmarks(self, queries: list[np.ndarray], match: CopyMatch, key_audio: Callable[[int], np.ndarray],
                        num_keys: int, exclude_self: bool = False, progress: bool = True) -> CopyMatch:
        """The landmark view (`evaluation.copy_landmarks`): of the training clips (and offsets) whose
        spectrogram-peak pairs agree most on one time offset (`landmark_candidates`), the one whose own
        peaks cancel most when it is subtracted (`LandmarkIndex.confirm`), scored by that share.
        `queries`: waveforms at `sample_rate`; `key_audio(i)`: waveform of key i, `num_keys` of them
        (fingerprinted once per `key_audio`);
        `exclude_self`: query i may not match key i. Returns `match` with `landmark_score`,
        `landmark_index` and `landmark_offset_s` set; the score joins the flagging union
        (`evaluation.memorization.COPY_SCORES`) with its own calibrated threshold."""
        if self.sample_rate != 16000:
            raise ValueError(f"the landmark view is tuned at 16000 Hz, got sample_rate={self.sample_rate}")
        if (self._landmark_index is None or self._landmark_index[0] is not key_audio
                or self._landmark_index[1] != num_keys):
            index = make_landmark_index()
            for k in tqdm(range(num_keys), desc="landmark index", unit="clip", disable=not progress):
                index.add(key_audio(k))
            self._landmark_index = (key_audio, num_keys, index)
        index = self._landmark_index[2]
        # the hash count shortlists (clip, offset) candidates; the one whose own peaks cancel most is
        # named, its share the score (README: held-out twins reach copies' hash counts, not their
        # cancellation; a buried copy's source is often not the count's first)
        confirmed = [index.confirm(q, key_audio, landmark_candidates(index, q, i if exclude_self else None))
                     for i, q in enumerate(tqdm(queries, desc="landmarks", unit="clip", disable=not progress))]
        share, clip, offset = (np.asarray(column) for column in zip(*confirmed)) if confirmed else ([], [], [])
        return dataclasses.replace(match, landmark_score=np.asarray(share, dtype=np.float64),
                                   landmark_index=np.asarray(clip, dtype=np.int64),
                                   landmark_offset_s=np.asarray(offset, dtype=np.float64))

    def _match(self, queries, keys, exclude_self, progress, query_bpm, key_bpm) -> CopyMatch:
        """Every query as a whole and, with `separate`, its harmonic and its percussive part (each
        matched on its own); a query keeps the part whose copy score (melody score) is highest."""
        parts = PARTS if self.separate else PARTS[:1]
        expanded = [separate_part(f, part) for f in queries for part in parts]
        matched = self._match_parts(expanded, keys, exclude_self, progress,
                                    [b for b in query_bpm for _ in parts], key_bpm, len(parts))
        fields = {name: [] for name in CopyMatch.__dataclass_fields__ if name not in VERIFY_FIELDS}
        shortlists = np.empty(len(queries), dtype=object)
        for q in range(len(queries)):
            rows = matched[q * len(parts) : (q + 1) * len(parts)]
            best = max(range(len(parts)), key=lambda i: rows[i]["score"])
            melody = max(range(len(parts)), key=lambda i: rows[i]["melody_score"])
            for name, values in fields.items():
                source = melody if name.startswith("melody") else best
                values.append(parts[source] if name == "part" else rows[source][name])
            # the verification's candidates: the best keys over all parts, each once, best first
            merged = sorted((c for row in rows for c in row["candidates"]), key=lambda c: -c[3])
            seen: set[int] = set()
            shortlists[q] = [c for c in merged if not (c[0] in seen or seen.add(c[0]))]
        return CopyMatch(**{name: np.asarray(values) for name, values in fields.items()}, candidates=shortlists)

    def _match_parts(self, queries, keys, exclude_self, progress, query_bpm, key_bpm, group: int) -> list[dict]:
        """Best key and transform of every (part of a) query; `exclude_self` skips key i for the
        queries `i * group ... (i + 1) * group - 1` (the parts of clip i)."""
        key_views = [self._views(f, b) for f, b in zip(keys, key_bpm)]
        query_views = [{**self._views(f, b), "phases": [self._views(f, b, p) for p in range(1, self.phases)]}
                       for f, b in zip(queries, query_bpm)]
        candidates = self._shortlist(query_views, key_views, exclude_self, progress, group)
        out = []
        for q, views in enumerate(tqdm(query_views, desc="copy alignment", unit="clip", disable=not progress)):
            best = self._align(views, [key_views[k] for k in candidates[q]])
            best["index"] = int(candidates[q][best.pop("position")])
            best["melody_index"] = int(candidates[q][best.pop("melody_position")])
            best["candidates"] = []
            for score, k, shift, ratio in best.pop("ranked"):
                index = int(candidates[q][k])
                if query_bpm[q] and key_bpm[index]:
                    ratio *= query_bpm[q] / key_bpm[index]
                best["candidates"].append((index, shift, ratio, score))
            if query_bpm[q] and key_bpm[best["index"]]:
                best["tempo_ratio"] *= query_bpm[q] / key_bpm[best["index"]]
                best["offset_s"] *= REFERENCE_BPM / key_bpm[best["index"]]
            out.append(best)
        return out

    def _shortlist(self, query_views, key_views, exclude_self: bool, progress: bool,
                   group: int = 1) -> list[np.ndarray]:
        """Indices of the `shortlist` best keys per query by transposition-invariant frames. Each half
        of the query is matched at its own best lag (the two scores added), so a loop rotated
        by part of its length, i.e. two pieces of the key in the other order, still ranks high."""
        frame_s = 4 * self.frame_seconds
        key_frames = [self._shortlist_frames(v) for v in key_views]
        k_len = max(f.shape[-1] for f in key_frames)
        key_stack = torch.stack([F.pad(f, (0, k_len - f.shape[-1])) for f in key_frames])
        key_lengths = torch.tensor([f.shape[-1] for f in key_frames])
        # energy of every key's frames up to each frame: a window's energy is a difference of two
        key_prefix = F.pad((key_stack**2).sum(1).double().cumsum(-1), (1, 0))  # [K, k_len + 1]
        count = max(1, min(self.shortlist, len(key_views) - (1 if exclude_self else 0)))
        if exclude_self and len(key_views) * group != len(query_views):
            raise ValueError("exclude_self needs the queries to be the keys (one group of parts per key)")
        best = torch.full((len(query_views), len(key_views)), -float("inf"))
        ratios = sorted({min(self.tempo_ratios), 1.0, max(self.tempo_ratios)})
        chunk = max(1, int(self.memory_budget_mb * 2**20 // (len(key_views) * (k_len + 64) * 4 * 8)))
        for ratio in tqdm(ratios, desc="copy shortlist", unit="tempo", disable=not progress):
            halves, lengths = [], []
            for views in query_views:
                frames = _resample_time(self._shortlist_frames(views), ratio)
                middle = frames.shape[-1] // 2
                halves += [frames[:, :middle], frames[:, middle:]]
                lengths += [middle, frames.shape[-1] - middle]
            q_len = max(lengths)
            stack = torch.stack([F.pad(h, (0, q_len - h.shape[-1])) for h in halves])
            lengths = torch.tensor(lengths)
            for start in range(0, len(halves), 2 * chunk):
                corr = cross_correlate(stack[start : start + 2 * chunk], key_stack, self.memory_budget_mb)
                lags = torch.arange(corr.shape[-1]) - (q_len - 1)
                own = lengths[start : start + 2 * chunk]
                overlap = (torch.minimum(own[:, None, None], key_lengths[None, :, None] - lags)
                           - torch.clamp(-lags, min=0)).float()  # [halves, K, lags]
                needed = (own.float() * 0.5).clamp_min(1)[:, None, None]
                if self.shortlist_cosine:
                    corr = corr / self._window_norms(stack[start : start + 2 * chunk], own, key_prefix,
                                                     key_lengths, lags)
                    weight = own.float()[:, None, None]  # each half's cosine counts by its frames
                else:
                    weight = torch.ones(1)
                score = torch.where(overlap >= needed, corr * weight, -float("inf")).max(dim=-1).values
                score = (score[0::2] + score[1::2]) / (own[0::2] + own[1::2]).float()[:, None]
                rows = slice(start // 2, start // 2 + score.shape[0])
                best[rows] = torch.maximum(best[rows], score)
        del frame_s
        if exclude_self:
            rows = torch.arange(len(query_views))
            best[rows, rows // group] = -float("inf")
        return [row.numpy() for row in torch.topk(best, count, dim=1).indices]

    @staticmethod
    def _window_norms(halves: torch.Tensor, lengths: torch.Tensor, key_prefix: torch.Tensor,
                      key_lengths: torch.Tensor, lags: torch.Tensor) -> torch.Tensor:
        """`[halves, K, lags]`: norm of each query piece times the norm of the key frames it lies on
        at each lag (the part of the key inside it), so that the correlation becomes a cosine."""
        low = lags.clamp_min(0)[None, None]  # first key frame the piece reaches
        high = torch.minimum(lags[None, None] + lengths[:, None, None], key_lengths[None, :, None])
        high = torch.maximum(high, low)  # [halves, K, lags]
        prefix = key_prefix[None].expand(len(lengths), -1, -1)
        key_energy = prefix.gather(2, high) - prefix.gather(2, low.expand_as(high))
        query_energy = (halves.double() ** 2).sum((1, 2))[:, None, None]
        return (query_energy * key_energy).clamp_min(1e-12).sqrt().float()

    def _align(self, query: dict[str, torch.Tensor], keys: list[dict[str, torch.Tensor]]) -> dict:
        """Lag x semitone x tempo search of one query against a few keys: every variant by FFT
        correlation at one lag, then for each key's best variant a two-piece alignment (each piece
        at its own lag, as in a loop rotated by part of its length)."""
        k_len = max(v["spectral"].shape[-1] for v in keys)

        def stack(name: str, tile: bool) -> torch.Tensor:
            parts = [torch.cat([v[name], v[name]], dim=-1) if tile else v[name] for v in keys]
            return torch.stack([F.pad(p, (0, (2 if tile else 1) * k_len - p.shape[-1])) for p in parts])

        key_spectral, key_rhythm, key_chroma = stack("spectral", True), stack("rhythm", True), stack("chroma", True)
        key_lengths = torch.tensor([2 * v["spectral"].shape[-1] for v in keys])
        bands = len(BAND_EDGES) - 1
        per_key = torch.full((len(keys),), -float("inf"))
        variant = [(1.0, 0)] * len(keys)
        melody = {"melody_score": -float("inf")}
        for ratio in self.tempo_ratios:
            spectral = _resample_time(query["spectral"], ratio)
            q_len = spectral.shape[-1]
            lags = torch.arange(q_len + key_spectral.shape[-1] - 1) - (q_len - 1)
            overlap = (torch.minimum(torch.tensor(q_len), key_lengths[:, None] - lags[None])
                       - torch.clamp(-lags, min=0)[None]).float()  # [K, lags]
            needed = torch.tensor([self._needed(q_len, int(n) // 2, self.frame_seconds) for n in key_lengths])
            valid = overlap >= needed[:, None]
            # pitch: the query's bins moved down by `shift` line up with a key `shift` semitones lower
            shifted = torch.stack([torch.roll(spectral, -s, dims=0) * self._edge_mask(s, spectral)
                                   for s in self.semitone_shifts])
            spec_corr = cross_correlate(shifted, key_spectral, self.memory_budget_mb)  # [S, K, lags]
            rhythm = _resample_time(query["rhythm"], ratio)
            rhythm_corr = cross_correlate(rhythm[None], key_rhythm, self.memory_budget_mb)[0] / bands
            combined = self.spectral_weight * spec_corr + (1 - self.spectral_weight) * rhythm_corr[None]
            combined = torch.where(valid[None], combined / overlap.clamp_min(1)[None], -float("inf"))
            value, shift_index = combined.max(dim=-1).values.max(dim=0)  # [K]
            for k in torch.nonzero(value > per_key).flatten().tolist():
                per_key[k] = value[k]
                variant[k] = (ratio, self.semitone_shifts[int(shift_index[k])])
            # melody / harmony: all 12 transpositions of the chroma
            chroma = _resample_time(query["chroma"], ratio)
            transposed = torch.stack([torch.roll(chroma, -s, dims=0) for s in range(12)])
            chroma_corr = cross_correlate(transposed, key_chroma, self.memory_budget_mb)
            chroma_corr = torch.where(valid[None], chroma_corr / overlap.clamp_min(1)[None], -float("inf"))
            value, flat = chroma_corr.reshape(-1).max(dim=0)
            if float(value) > melody["melody_score"]:
                s, k, _ = np.unravel_index(int(flat), tuple(chroma_corr.shape))
                melody = {"melody_score": float(value), "melody_position": int(k),
                          "melody_semitones": float(s if s <= 6 else s - 12)}
        best = {"score": -float("inf")}
        ranked = []
        for k, key in enumerate(keys):
            ratio, shift = variant[k]
            score, lag = self._two_piece(query, key, ratio, shift)
            ranked.append((score, k, float(shift), float(ratio)))
            if score > best["score"]:
                best = {"score": score, "position": k, "semitones": float(shift), "tempo_ratio": float(ratio),
                        "lag": lag}
        ranked.sort(key=lambda row: -row[0])
        best["ranked"] = ranked
        key = keys[best["position"]]
        key_frames = key["spectral"].shape[-1]
        offset_frames = best.pop("lag") % key_frames
        gain = self._gain_db(query["energy"], key["energy"], best["tempo_ratio"], offset_frames)
        return {**best, **melody, "offset_s": offset_frames * self.frame_seconds, "gain_db": gain}

    def _two_piece(self, query: dict, key: dict, ratio: float, shift: int) -> tuple[float, int]:
        """Best mean frame similarity when the query is cut once and each piece sits at its own lag
        and hop phase in the key (one piece: an ordinary copy); returns it and the lag of the first
        piece (of the second when the first is under 0.5 s).

        The query's first and last `edge_frames` (their STFT windows reach past the clip) and the
        `cut_gap_frames` that straddle a cut are left out of the mean: they hold what a copy does
        not share with its source (padding, the seam of a rotated loop)."""
        bands = len(BAND_EDGES) - 1
        pieces = []
        for views in [query, *query.get("phases", [])]:
            spectral = _resample_time(views["spectral"], ratio)
            spectral = torch.roll(spectral, -shift, dims=0) * self._edge_mask(shift, spectral)
            pieces.append((spectral, _resample_time(views["rhythm"], ratio)))
        length = min(spectral.shape[-1] for spectral, _ in pieces)  # phases may differ by a frame
        k_len = key["spectral"].shape[-1]
        lags = torch.arange(-(length - 1), k_len)
        index = torch.arange(length)[:, None] + lags[None] + length
        diagonals = []
        for spectral, rhythm in pieces:
            similarity = (self.spectral_weight * spectral[:, :length].T @ key["spectral"]
                          + (1 - self.spectral_weight) * rhythm[:, :length].T @ key["rhythm"] / bands)  # [Tq, Tk]
            padded = F.pad(similarity, (length, length))  # lags reaching past the key score 0
            diagonals.append(padded.gather(1, index))  # [Tq, lags]: query frame t against key frame t + lag
        diagonals = torch.stack(diagonals)  # [phases, Tq, lags]
        edge = min(self.edge_frames, max(0, (length - 2) // 4))
        gap = min(self.cut_gap_frames, max(0, length - 2 * edge - 2))
        diagonals[:, :edge] = 0
        diagonals[:, length - edge :] = 0
        prefix = F.pad(diagonals.cumsum(1), (0, 0, 1, 0))  # [phases, Tq + 1, lags]
        counted = length - 2 * edge
        whole = prefix[:, -1].flatten()
        one_piece = float(whole.max()) / max(counted, 1)
        one_lag = int(lags[int(whole.argmax()) % len(lags)])
        cuts = torch.arange(edge, length - edge - gap + 1)
        if len(cuts) == 0 or counted - gap <= 0:
            return one_piece, one_lag
        head = prefix[:, cuts].permute(1, 0, 2).flatten(1).max(dim=1)  # best first piece ending at each cut
        tail = (prefix[:, -1][:, None] - prefix[:, cuts + gap]).permute(1, 0, 2).flatten(1).max(dim=1)
        total = (head.values + tail.values) / (counted - gap)
        best = int(total.argmax())
        if float(total[best]) <= one_piece:
            return one_piece, one_lag
        # the offset: where the query's start lies in the key, unless the first piece is too short to say
        cut = int(cuts[best])
        first = head.indices[best] if cut >= round(0.5 / self.frame_seconds) else tail.indices[best]
        return float(total[best]), int(lags[int(first) % len(lags)])

    @staticmethod
    def _edge_mask(shift: int, x: torch.Tensor) -> torch.Tensor:
        """Zero the rows that `torch.roll` wrapped round (shift > 0 wraps the lowest to the top)."""
        mask = torch.ones(x.shape[0], 1)
        if shift > 0:
            mask[-shift:] = 0
        elif shift < 0:
            mask[:-shift] = 0
        return mask

    @staticmethod
    def _gain_db(query_energy: torch.Tensor, key_energy: torch.Tensor, ratio: float, offset: int) -> float:
        """Median level difference (dB) over the key's loud frames, query aligned at `offset`."""
        q = _resample_time(query_energy[None], ratio)[0]
        k = torch.cat([key_energy, key_energy])[offset : offset + len(q)]
        q = q[: len(k)]
        loud = k >= k.max() - 20
        if not bool(loud.any()):
            return 0.0
        return float(torch.median(q[loud] - k[loud]))
