"""Landmark fingerprints: is a clip, or a copy mixed under other material, a training clip?

Wang's landmark scheme (Wang 2003, "An industrial-strength audio search algorithm"; D. Ellis'
audfprint): the peaks of a clip's spectrogram are paired into hashes (f1, f2 - f1, t2 - t1), each
kept with its anchor time t1. A query's hashes are looked up in an index of the training clips'; a
true match is many hashes that agree on one time offset (training time - query time), while chance
matches spread over all offsets. A copy mixed under louder material keeps the peaks where it is
locally the louder part, so enough of its hashes survive to stand out of the offset histogram.

Offsets are counted modulo the training clip's length (its frames), and each training clip is
fingerprinted with its start appended to its end: a loop started on another beat (a circular
rotation) lands on one offset too. Pitch and tempo changes move every peak and are not this
module's job (`evaluation.copy_detection` has them).

Written with numpy/scipy: no maintained package does this offline (audfprint is not on PyPI;
PyDejavu needs a database server and was last released in 2014).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

SAMPLE_RATE = 16000
FREQ_BITS, DF_BITS, DT_BITS = 9, 8, 8  # hash layout: anchor bin (< 512), bin difference + 128, frame gap (< 256)


@dataclass(frozen=True)
class LandmarkMatch:
    """Best training clip of each query (arrays of length `queries`).

    `index`: best training clip (-1: no hash in common); `count`: hashes agreeing on its best offset
    (that offset and its two neighbours, one frame of timing slack; idf-weighted with `idf`);
    `hashes`: the query's hash count; `score`: the count's excess over chance in Poisson standard
    deviations (`LandmarkIndex`); `offset_s`: where in the training clip (seconds, modulo its
    length) the query starts; `background`: the chance count of one offset of that clip (its hits
    spread evenly over its offsets). With `LandmarkIndex(presence_candidates=K)`: `presence`,
    `presence_index`, `presence_offset_s`, `presence_share` (`LandmarkIndex._presence`)."""

    index: np.ndarray
    count: np.ndarray
    hashes: np.ndarray
    score: np.ndarray
    offset_s: np.ndarray
    background: np.ndarray
    presence: np.ndarray | None = None
    presence_index: np.ndarray | None = None
    presence_offset_s: np.ndarray | None = None
    presence_share: np.ndarray | None = None


class LandmarkFingerprinter:
    """Spectrogram peaks -> landmark hashes of one clip.

    Args:
        sample_rate: Hz of the clips (16 kHz mono).
        n_fft, hop_length: STFT in samples (1024 / 256 at 16 kHz: 64 ms windows, 16 ms frames).
        peak_freq, peak_time: half-size (bins, frames) of the neighbourhood a peak is the maximum of.
        density: peaks kept per second (the most prominent above their local neighbourhood, per 1 s
            block), so a louder mixed-in part cannot take every peak of a stretch.
        bands: the block's peaks are shared equally among this many octave-spaced frequency bands
            (a copy under material louder in one band keeps the peaks of the bands it leads).
        fanout: pairs per anchor (the nearest peaks in its target zone).
        max_dt, max_df: target zone: up to this many frames later and bins away.
        min_dt: and at least this many frames later (pairs within one drum hit, which every clip
            sharing that one-shot holds, can be left out).
        floor_db: peaks more than this below the clip's loudest bin are ignored (silence, dither).
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, n_fft: int = 1024, hop_length: int = 256,
                 peak_freq: int = 6, peak_time: int = 4, density: float = 40.0, fanout: int = 6,
                 max_dt: int = 48, max_df: int = 96, floor_db: float = 60.0, bands: int = 1,
                 min_dt: int = 1) -> None:
        if not (0 < min_dt <= max_dt < 2**DT_BITS and 0 < max_df < 2 ** (DF_BITS - 1) and n_fft // 2 <= 2**FREQ_BITS):
            raise ValueError(f"min_dt={min_dt} <= max_dt={max_dt} (1..{2**DT_BITS - 1}), max_df={max_df} "
                             f"(1..{2 ** (DF_BITS - 1) - 1}) and n_fft={n_fft} (<= {2 ** (FREQ_BITS + 1)}) must fit "
                             "the hash layout")
        if density <= 0 or fanout < 1 or not 1 <= bands <= 8:
            raise ValueError(f"density={density} (> 0 peaks per second), fanout={fanout} (>= 1) or bands={bands} "
                             "(1..8) out of range")
        self.sample_rate, self.n_fft, self.hop_length = sample_rate, n_fft, hop_length
        self.peak_freq, self.peak_time, self.density, self.fanout = peak_freq, peak_time, density, fanout
        self.max_dt, self.max_df, self.floor_db, self.bands, self.min_dt = max_dt, max_df, floor_db, bands, min_dt
        top = n_fft // 2
        self._band_edges = [0, *(top >> (bands - b) for b in range(1, bands)), top]  # octaves down from Nyquist

    @property
    def frame_seconds(self) -> float:
        return self.hop_length / self.sample_rate

    def describe(self) -> dict:
        return {"sample_rate_hz": self.sample_rate, "n_fft": self.n_fft, "hop_length": self.hop_length,
                "peak_neighbourhood": [self.peak_freq, self.peak_time], "peaks_per_second": self.density,
                "fanout": self.fanout, "target_zone": [self.max_dt, self.max_df], "floor_db": self.floor_db,
                "bands": self.bands, "min_dt": self.min_dt}

    def log_spectrogram(self, waveform: np.ndarray) -> np.ndarray:
        """Mono waveform -> `[bins, frames]` magnitude in dB (bin 0 dropped: DC carries no landmark)."""
        audio = np.asarray(waveform, dtype=np.float32)
        if len(audio) < self.n_fft:
            audio = np.pad(audio, (0, self.n_fft - len(audio)))
        _, _, spec = signal.stft(audio, nperseg=self.n_fft, noverlap=self.n_fft - self.hop_length,
                                 boundary=None, padded=False)
        return 20 * np.log10(np.abs(spec[1:]) + 1e-9)

    def peaks(self, waveform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`(bins, frames)` of the kept spectrogram peaks, sorted by frame: local maxima of the
        `(2 peak_freq + 1) x (2 peak_time + 1)` neighbourhood, ranked by how far they stand above
        that neighbourhood's mean, the best `density` per second in each 1 s block."""
        db = self.log_spectrogram(waveform)
        size = (2 * self.peak_freq + 1, 2 * self.peak_time + 1)
        is_peak = (db == ndimage.maximum_filter(db, size=size, mode="nearest")) & (db > db.max() - self.floor_db)
        prominence = db - ndimage.uniform_filter(db, size=size, mode="nearest")
        bins, frames = np.nonzero(is_peak)
        block = max(1, round(1.0 / self.frame_seconds))
        per_block = max(1, round(self.density * block * self.frame_seconds / self.bands))
        keep = []
        for start in range(0, db.shape[1], block):
            for low, high in zip(self._band_edges[:-1], self._band_edges[1:]):
                inside = np.flatnonzero((frames >= start) & (frames < start + block) & (bins >= low) & (bins < high))
                keep.append(inside[np.argsort(-prominence[bins[inside], frames[inside]], kind="stable")[:per_block]])
        kept = np.concatenate(keep) if keep else np.zeros(0, dtype=int)
        order = np.lexsort((bins[kept], frames[kept]))
        return bins[kept][order], frames[kept][order]

    def peak_map(self, waveform: np.ndarray) -> np.ndarray:
        """`[bins, frames]` bool: within one bin and one frame of a local maximum of the peak
        neighbourhood (every one, no density cap): where a peak of another clip counts as present."""
        db = self.log_spectrogram(waveform)
        size = (2 * self.peak_freq + 1, 2 * self.peak_time + 1)
        is_peak = (db == ndimage.maximum_filter(db, size=size, mode="nearest")) & (db > db.max() - self.floor_db)
        return ndimage.binary_dilation(is_peak, structure=np.ones((3, 3), dtype=bool))

    def hashes(self, waveform: np.ndarray, anchors_before: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`(hashes, anchor frames)` int64 arrays of the clip's landmarks: each peak paired with the
        next `fanout` peaks at most `max_dt` frames later and `max_df` bins away. With
        `anchors_before`, only anchors before that frame are kept (a loop fingerprinted with its
        start appended, so pairs across its end exist once)."""
        return self.pair_peaks(*self.peaks(waveform), anchors_before)

    def pair_peaks(self, bins: np.ndarray, frames: np.ndarray,
                   anchors_before: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`hashes` of given peaks (`(bins, frames)` sorted by frame, as `peaks` returns them)."""
        if anchors_before is not None:
            anchors = int(np.searchsorted(frames, anchors_before))  # frames are sorted
        else:
            anchors = len(bins)
        # candidate partners: the next `lookahead` peaks of each anchor, nearest first
        lookahead = 8 * self.fanout + int(self.density * self.min_dt * self.frame_seconds)
        first, second, step = [], [], []
        for k in range(1, min(lookahead, len(bins) - 1) + 1):
            i = np.arange(min(anchors, len(bins) - k))
            dt, df = frames[i + k] - frames[i], bins[i + k] - bins[i]
            ok = (dt >= self.min_dt) & (dt <= self.max_dt) & (np.abs(df) <= self.max_df)
            first.append(i[ok])
            second.append(i[ok] + k)
            step.append(np.full(int(ok.sum()), k))
        if not first or sum(len(f) for f in first) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        first, second, step = np.concatenate(first), np.concatenate(second), np.concatenate(step)
        order = np.lexsort((step, first))  # by anchor, then nearest partner first
        first, second = first[order], second[order]
        starts = np.flatnonzero(np.r_[True, first[1:] != first[:-1]])
        rank = np.arange(len(first)) - np.repeat(starts, np.diff(np.r_[starts, len(first)]))
        first, second = first[rank < self.fanout], second[rank < self.fanout]
        dt = (frames[second] - frames[first]).astype(np.int64)
        df = (bins[second] - bins[first] + 2 ** (DF_BITS - 1)).astype(np.int64)
        hashes = (bins[first].astype(np.int64) << (DF_BITS + DT_BITS)) | (df << DT_BITS) | dt
        return hashes, frames[first].astype(np.int64)


class LandmarkIndex:
    """Landmark hashes of training clips, searched by offset agreement.

    `add` fingerprints each training clip (as a loop: its first `max_dt` frames appended, anchors
    kept before its end); `match` returns, per query, the training clip whose hashes agree most on
    one offset (plus, for a window of a loop rotated circularly, the offset one query length away:
    its other piece). The score is the agreeing count's excess over that clip's chance level in
    standard deviations of a Poisson count (`(count - chance) / sqrt(chance + 1)`), so a long, busy
    training clip, whose hashes meet a query's by chance at every offset, does not win by size."""

    def __init__(self, fingerprinter: LandmarkFingerprinter | None = None, idf: bool = False,
                 query_density: float | None = None, presence_candidates: int = 0) -> None:
        self.fingerprinter = fingerprinter or LandmarkFingerprinter()
        # queries may keep more peaks than the training clips (audfprint's practice): a copy under
        # louder material keeps its peaks among the query's, if fewer of them rank first
        self.query_fingerprinter = self.fingerprinter
        if query_density is not None:
            self.query_fingerprinter = copy.copy(self.fingerprinter)
            self.query_fingerprinter.density = query_density
        self.idf = idf  # weigh each hit by log(training clips / clips holding its hash)
        self.presence_candidates = presence_candidates
        self._hash: list[np.ndarray] = []
        self._clip: list[np.ndarray] = []
        self._time: list[np.ndarray] = []
        self._peaks: list[tuple[np.ndarray, np.ndarray]] = []  # each training clip's peaks (bins, frames)
        self.frames: list[int] = []  # each training clip's length in frames (its offsets' modulus)
        self._sorted: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.frames)

    def add(self, waveform: np.ndarray) -> int:
        """Fingerprint one training clip (mono at the fingerprinter's rate); returns its index."""
        fp = self.fingerprinter
        audio = np.asarray(waveform, dtype=np.float32)
        frames = max(1, round(len(audio) / fp.hop_length))  # the loop's period in frames
        wrap = audio[: (fp.max_dt + fp.peak_time + 2) * fp.hop_length + fp.n_fft]
        bins, peak_frames = fp.peaks(np.concatenate([audio, wrap]))
        hashes, times = fp.pair_peaks(bins, peak_frames, anchors_before=frames)
        self._peaks.append((bins[peak_frames < frames], peak_frames[peak_frames < frames]))
        self._hash.append(hashes)
        self._time.append(times)
        self._clip.append(np.full(len(hashes), len(self.frames), dtype=np.int64))
        self.frames.append(frames)
        self._sorted = None
        return len(self.frames) - 1

    def _table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`(hashes, clips, anchor frames, weights)` of every training landmark, sorted by hash."""
        if self._sorted is None:
            hashes, clips, times = (np.concatenate(parts) for parts in (self._hash, self._clip, self._time))
            order = np.argsort(hashes, kind="stable")
            hashes, clips, times = hashes[order], clips[order], times[order]
            weights = np.ones(len(hashes))
            if self.idf and len(hashes):
                pairs = np.unique(np.stack([hashes, clips]), axis=1)  # (hash, clip) once each
                values, holders = np.unique(pairs[0], return_counts=True)
                weights = np.log((len(self.frames) + 1) / holders[np.searchsorted(values, hashes)])
            self._sorted = (hashes, clips, times, weights)
        return self._sorted

    def _offset_scores(self, waveform: np.ndarray, exclude: int | None = None) -> dict | None:
        """Every (training clip, offset) the query's hashes meet: `clip_of`, `offset` (frames) and
        `score` arrays, the query's hash count `hashes` and each clip's chance count per offset
        `background`; None when no hash of the query occurs in the index (outside `exclude`)."""
        if not self.frames:
            raise ValueError("the landmark index holds no training clip: add() some first")
        q_hash, q_time = self.query_fingerprinter.hashes(waveform)
        table, clips, times, weights = self._table()
        lo, hi = np.searchsorted(table, q_hash, "left"), np.searchsorted(table, q_hash, "right")
        sizes = hi - lo
        if sizes.sum() == 0:
            return None
        rows = np.repeat(lo - np.cumsum(sizes) + sizes, sizes) + np.arange(sizes.sum())  # every hit's row
        hit_clip, modulus, hit_weight = clips[rows], np.asarray(self.frames)[clips[rows]], weights[rows]
        hit_offset = (times[rows] - np.repeat(q_time, sizes)) % modulus
        if exclude is not None:
            keep = hit_clip != exclude
            hit_clip, hit_offset, modulus, hit_weight = (x[keep] for x in (hit_clip, hit_offset, modulus, hit_weight))
            if len(hit_clip) == 0:
                return None
        # count each (clip, offset) with its two neighbouring offsets (one frame of slack)
        width = int(max(self.frames)) + 1
        keys = np.concatenate([hit_clip * width + (hit_offset + d) % modulus for d in (-1, 0, 1)])
        unique, inverse = np.unique(keys, return_inverse=True)
        counts = np.bincount(inverse, weights=np.tile(hit_weight, 3), minlength=len(unique))
        per_clip = np.bincount(hit_clip, weights=hit_weight, minlength=len(self.frames))
        clip_of, offset = unique // width, unique % width
        frames = np.asarray(self.frames)[clip_of]
        # a window of a loop rotated circularly is two pieces of it whose offsets differ by the
        # query's length: each offset's count adds that of the offset one query length away
        # (the better side) unless that is the same offset modulo the clip's length
        query_frames = round(len(np.asarray(waveform)) / self.fingerprinter.hop_length)
        second = np.zeros(len(unique))
        for step in (-query_frames, query_frames):
            other = clip_of * width + (offset + step) % frames
            at = np.minimum(np.searchsorted(unique, other), len(unique) - 1)
            second = np.maximum(second, np.where(unique[at] == other, counts[at], 0.0))
        apart = np.minimum(query_frames % frames, frames - query_frames % frames) > 2
        second = np.where(apart, second, 0.0)
        background = 3 * per_clip[clip_of] / frames * np.where(apart, 2, 1)  # chance count of the bins added
        total = counts + second
        return {"clip_of": clip_of, "offset": offset, "total": total, "hashes": len(q_hash),
                "score": (total - background) / np.sqrt(background + 1), "background": per_clip[clip_of] / frames}

    def match_one(self, waveform: np.ndarray, exclude: int | None = None) -> dict:
        """Best training clip of one query: `{index, count, hashes, score, offset_s, background}`
        (index -1 and score 0 when no hash of the query occurs in the index)."""
        fp = self.fingerprinter
        found = self._offset_scores(waveform, exclude)
        if found is None:
            return {"index": -1, "count": 0, "hashes": len(self.query_fingerprinter.hashes(waveform)[0]),
                    "score": 0.0, "offset_s": 0.0, "background": 0.0,
                    **({"presence": 0.0, "presence_index": -1, "presence_offset_s": 0.0, "presence_share": 0.0}
                       if self.presence_candidates else {})}
        clip_of, offset, score = found["clip_of"], found["offset"], found["score"]
        best = int(np.argmax(score))
        out = {"index": int(clip_of[best]), "count": float(found["total"][best]), "hashes": found["hashes"],
               "score": float(score[best]), "offset_s": float(offset[best]) * fp.frame_seconds,
               "background": float(found["background"][best])}
        if self.presence_candidates:
            out.update(self._presence(waveform, clip_of, offset, score))
        return out

    def candidates(self, waveform: np.ndarray, clips: int, exclude: int | None = None, more_offsets: int = 0,
                   of_best: int = 0) -> list[tuple[int, float]]:
        """`(training clip, offset_s)` pairs worth a cancellation check, best hash score first: the
        best offset of each of the `clips` best clips, then `more_offsets` further offsets (at least
        4 frames from those kept) of each of the `of_best` best clips (a loop repeating every beat
        agrees on several offsets, and the count may prefer a wrong one). Empty when no hash meets."""
        found = self._offset_scores(waveform, exclude)
        if found is None:
            return []
        clip_of, offset, score = found["clip_of"], found["offset"], found["score"]
        order = np.argsort(-score, kind="stable")
        _, first = np.unique(clip_of[order], return_index=True)  # each clip's best offset
        chosen = order[np.sort(first)[:clips]]
        seconds = self.fingerprinter.frame_seconds
        out = [(int(clip_of[c]), float(offset[c]) * seconds) for c in chosen]
        for c in chosen[:of_best] if more_offsets else []:
            clip, kept = clip_of[c], [int(offset[c])]
            for other in offset[order[clip_of[order] == clip]]:
                if len(kept) > more_offsets:
                    break
                gaps = np.abs(np.asarray(kept) - int(other))
                if np.all(np.minimum(gaps, self.frames[clip] - gaps) > 3):
                    kept.append(int(other))
                    out.append((int(clip), float(other) * seconds))
        return out

    def _presence(self, waveform: np.ndarray, clip_of: np.ndarray, offset: np.ndarray, score: np.ndarray) -> dict:
        """Of the `presence_candidates` best training clips (each at its best offset), the one whose
        own peaks are most often present in the query (`peak_map`): one surviving peak is evidence,
        where a hash needs two. `presence`: that count's excess over chance (the share of the
        query's cells marked present) in binomial standard deviations."""
        present = self.fingerprinter.peak_map(waveform)
        chance = float(present.mean())
        order = np.argsort(-score, kind="stable")
        _, first = np.unique(clip_of[order], return_index=True)  # each clip's best offset
        candidates = order[np.sort(first)[: self.presence_candidates]]
        best = {"presence": 0.0, "presence_index": -1, "presence_offset_s": 0.0, "presence_share": 0.0}
        for c in candidates:
            bins, frames = self._peaks[int(clip_of[c])]
            at = (frames - offset[c]) % self.frames[int(clip_of[c])]
            inside = at < present.shape[1]
            n = int(inside.sum())
            if n == 0 or not 0 < chance < 1:
                continue
            hits = int(present[bins[inside], at[inside]].sum())
            z = (hits - n * chance) / np.sqrt(n * chance * (1 - chance))
            if z > best["presence"]:
                best = {"presence": float(z), "presence_index": int(clip_of[c]),
                        "presence_offset_s": float(offset[c]) * self.fingerprinter.frame_seconds,
                        "presence_share": hits / n}
        return best

    def _stft(self, audio: np.ndarray) -> np.ndarray:
        fp = self.fingerprinter
        return signal.stft(audio, nperseg=fp.n_fft, noverlap=fp.n_fft - fp.hop_length, boundary=None, padded=False)[2]

    def cancellation(self, query: np.ndarray, key: np.ndarray, offset_s: float, key_id: int, search: int | None = 128,
                     drop_db: float = 10.0, query_spectrum: np.ndarray | None = None) -> float:
        """A second look at a landmark candidate (training clip `key_id`, waveform `key`, the query
        starting `offset_s` seconds into it): the share of the candidate's own peaks in the query's
        time range whose time-frequency cell loses more than `drop_db` when the candidate, aligned to
        the sample (cross-correlation within `search` samples of the landmark offset; None: anywhere
        in the loop) and fitted by one complex gain per frequency bin, is subtracted from the query.
        An additive copy cancels where it is the louder part, under any other material; a held-out
        twin (the same one-shots on the same grid, hits humanised by milliseconds, other velocities)
        does not. A rotated window is aligned on its first piece only. `query_spectrum`: the query's
        STFT, when the caller checks several candidates of one query."""
        return self._cancelled(query, key, offset_s, key_id, search, drop_db, query_spectrum)[0]

    def _cancelled(self, query: np.ndarray, key: np.ndarray, offset_s: float, key_id: int, search: int | None,
                   drop_db: float, query_spectrum: np.ndarray | None) -> tuple[float, float]:
        """`cancellation` and the aligned start in the key (seconds)."""
        fp = self.fingerprinter
        n = len(query)
        if n < fp.n_fft or len(key) == 0:
            return 0.0, offset_s
        anywhere = search is None
        if anywhere:  # every start of the loop: one circular cross-correlation
            search, start = len(key) // 2, round(offset_s * fp.sample_rate) + len(key) // 2
        else:
            start = round(offset_s * fp.sample_rate)
        looped = np.tile(key, -(-(n + 2 * search) // len(key)) + 2)  # the key as a loop, long enough
        begin = (start - search) % len(key)
        segment = looped[begin : begin + n + 2 * search]
        lags = signal.correlate(segment, query, mode="valid", method="fft")  # 2 search + 1 lags
        lag = int(np.argmax(np.abs(lags)))
        aligned_s = ((begin + lag) % len(key)) / fp.sample_rate
        q = self._stft(query) if query_spectrum is None else query_spectrum
        k = self._stft(segment[lag : lag + n])
        gain = (q * np.conj(k)).sum(axis=1, keepdims=True) / ((np.abs(k) ** 2).sum(axis=1, keepdims=True) + 1e-12)
        bins, frames = self._peaks[key_id]
        at = (frames - round((aligned_s if anywhere else offset_s) / fp.frame_seconds)) % self.frames[key_id]
        inside = at < q.shape[1]
        if not inside.any():
            return 0.0, aligned_s
        cells = (bins[inside] + 1, at[inside])  # peaks' bins count from 1 (bin 0 dropped)
        cells_q, cells_r = np.abs(q[cells]), np.abs(q[cells] - gain[cells[0], 0] * k[cells])
        return float(np.mean(20 * np.log10((cells_q + 1e-9) / (cells_r + 1e-9)) > drop_db)), aligned_s

    def confirm(self, query: np.ndarray, key_audio, candidates: list[tuple[int, float]],
                search: int | None = 128) -> tuple[float, int, float]:
        """`(share, training clip, offset_s)` of the candidate (`candidates`' `(clip, offset_s)`) whose
        own peaks cancel most (`cancellation`, aligned within `search` samples; offset_s as aligned);
        `(0.0, -1, 0.0)` without candidates. `key_audio(i)`: waveform of training clip i. The hash
        count only shortlists: a copy buried under louder material keeps too few hashes to come
        first, but its source cancels wherever it leads."""
        best = (0.0, -1, 0.0)
        if not candidates or len(query) < self.fingerprinter.n_fft:
            return best
        spectrum = self._stft(np.asarray(query, dtype=np.float32))
        for clip, offset_s in candidates:
            share, aligned_s = self._cancelled(query, key_audio(clip), offset_s, clip, search, 10.0, spectrum)
            if share > best[0] or best[1] < 0:
                best = (share, clip, aligned_s)
        return best

    def match(self, queries: list[np.ndarray], exclude: list[int | None] | None = None) -> LandmarkMatch:
        """`match_one` of every query (`exclude[i]`: a training clip query i may not match, e.g. itself)."""
        exclude = exclude or [None] * len(queries)
        if not queries:
            raise ValueError("landmark matching needs at least one query clip")
        rows = [self.match_one(q, e) for q, e in zip(queries, exclude)]
        return LandmarkMatch(**{name: np.asarray([row[name] for row in rows])
                                for name in LandmarkMatch.__dataclass_fields__ if name in rows[0]})


# The settings `CopyDetector(landmarks=True)` uses, chosen on the planted copies and calibration
# clips of benchmarks/check_landmark_mix.py (never on the test split; README): 4 ms frames, so that
# pairs of hits keep their exact spacing; partners 96-512 ms after the anchor (pairs within one drum
# hit, which every clip sharing that one-shot holds, left out); 80 peaks a second in the index, shared
# by four octave bands, and three times as many in a query.
LANDMARK_SETTINGS = {"n_fft": 512, "hop_length": 64, "min_dt": 24, "max_dt": 128, "bands": 4, "density": 80.0}
QUERY_DENSITY = 240.0
IDF = False
# The cancellation decides among the hash count's best: the best offset of each of the 50 best
# clips, and two more offsets of each of the 5 best (benchmarks/check_landmark_mix.py
# --cancel-candidates: drums mix copies 58% -> 83% on the seed-0 copies, 71% -> 83% fresh; the
# calibration threshold barely moves, as a clip that is no copy cancels little against any clip).
CANDIDATES, MORE_OFFSETS, OF_BEST = 50, 2, 5
# Clips shortlisted from the query's percussive part too (`landmark_candidates`; 0: none) and the HPSS margin:
# a drum copy under tonal material ranks far higher there (README, "Memorization": drums mix recall 83% -> 92% / 88%).
PERCUSSIVE_CANDIDATES, PERCUSSIVE_MARGIN = 25, 2.0


def make_landmark_index() -> LandmarkIndex:
    """An empty `LandmarkIndex` with the settings the copy detector's landmark view uses."""
    return LandmarkIndex(LandmarkFingerprinter(**LANDMARK_SETTINGS), idf=IDF, query_density=QUERY_DENSITY)


def landmark_settings() -> dict:
    """Those settings, for a report's record of the detector."""
    return {**make_landmark_index().fingerprinter.describe(), "query_peaks_per_second": QUERY_DENSITY, "idf": IDF,
            "cancellation_candidates": {"clips": CANDIDATES, "more_offsets": MORE_OFFSETS, "of_best": OF_BEST,
                                        "percussive_clips": PERCUSSIVE_CANDIDATES}}


def percussive_part(waveform: np.ndarray) -> np.ndarray:
    """The percussive part of a clip (librosa's median-filtering HPSS, margin 2): a drum copy mixed under tonal
    material keeps its peaks there while the tonal peaks that outnumber them in the whole clip are gone."""
    import librosa  # here: only the percussive shortlist needs it

    return librosa.effects.percussive(np.asarray(waveform, dtype=np.float32), margin=PERCUSSIVE_MARGIN)


def landmark_candidates(index: LandmarkIndex, query: np.ndarray, exclude: int | None = None, clips: int = CANDIDATES,
                        more_offsets: int = MORE_OFFSETS, percussive: int = PERCUSSIVE_CANDIDATES
                        ) -> list[tuple[int, float]]:
    """The `(training clip, offset_s)` candidates the landmark view checks by cancellation: the whole query's, then
    the best offset of each of the `percussive` best clips of its percussive part (`percussive_part`) not yet listed
    (further offsets of those clips changed nothing on the drums benchmark)."""
    found = index.candidates(query, clips, exclude, more_offsets=more_offsets, of_best=OF_BEST)
    if percussive:
        listed = set(found)
        found += [pair for pair in index.candidates(percussive_part(query), percussive, exclude) if pair not in listed]
    return found
