"""Verification of a copy candidate: how much of the query does the named training clip explain?

The copy detector's search (`evaluation.copy_detection`) names training clips and a transform
(semitones, tempo ratio) from coarse, level-free views. As audio fingerprinting and sample
identification do after a candidate lookup, this stage checks a candidate on the signal itself:

1. the training clip is put through the estimated transform (Rubber Band, `music.stretch`) and
   tiled (a loop may be rotated, a query may be longer than the clip);
2. the query is aligned to it on fine-hop (8 ms) STFT magnitudes, one piece or two (a rotated
   loop: two pieces of the clip in the other order), every lag at 32 ms then the best refined;
3. each piece's lag is refined to the sample by cross-correlating its waveform with the whole tiled
   clip, and the query's complex STFT is fitted by the clip's through a short FIR filter per piece
   (33 taps, 2 ms, centred on the lag): a gain, an EQ, a low-pass or a sub-sample delay is a short
   filter and costs nothing. copy-4 fitted one complex gain per frequency bin instead, which sets
   every partial's phase on its own: another rendition of the same sustained chord, or a near-twin
   with long notes, was explained too (a chord with random partial phases: ~10 dB per bin, ~3 dB
   with 33 taps). The per-bin fit is still computed for comparison (`compare_taps=(0,)`).

The result is the residual SNR in dB: the query's energy over what the fitted clip leaves
unexplained. A true copy leaves a residual near what was added to it (15 dB SNR noise leaves
~15 dB; an unchanged copy 50+ dB); another clip from the same template and kit (a "near-twin":
the same hits a few ms apart, other velocities) leaves most of itself (1-6 dB on the demo corpus),
although its magnitudes match as closely as a copy's (the magnitude residual is reported too).
What it cannot verify: a copy whose phases the transform rewrote (a pitch shift by a phase
vocoder: with `recut_shift` a Rubber Band shift of an excerpt is reproduced by shifting the same
excerpt, `CopyVerifier._recut_fits`; a model's own transposition is not), and a copy under louder
other material (the other material is residual).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import signal

from music.stretch import pitch_shift, time_stretch

COARSE = 4  # fine frames pooled for the first, every-lag pass of the alignment
SEGMENT_FRAMES = 64  # fine frames (0.5 s at 8 ms) per segment of the residual's time profile
RECUT_STEPS = 5  # cuts tried per pitch-shifted candidate (`_recut_fits`): the first, then lag corrections
RECUT_FINE = 16  # samples: each cut's start is corrected by the waveform lag within this many samples
RECUT_N_FFT = 512  # samples (32 ms at 16 kHz): the STFT whose per-bin log magnitudes place the recut's first cut
RECUT_HOP = 16  # samples (1 ms): its hop; the coarse start is then refined to the sample within one hop
RECUT_MIN_AGREEMENT = 0.8  # envelope cosine (`recut_start`) below which no cut is shifted: pitch copies 0.89-0.99,
# held-out clips' best candidates 0.07-0.77 (README); a shifted cut costs a Rubber Band run
RECUT_DONE_DB = 40.0  # a recut explaining this much is the copy: no more cuts
STEADY_FLOOR_DB = 40.0  # segments more than this below the loudest are left out of the steady SNR


def steady_snr_db(segments: np.ndarray | None, whole_db: float) -> float:
    """The steady residual SNR (dB, reported beside the whole clip's, not decided on): the median
    over 0.5 s segments of each segment's residual SNR (segments within `STEADY_FLOOR_DB` of the
    loudest), never above the whole clip's `whole_db`. A copy leaves the same residual throughout
    (what was added to it: 15 dB noise leaves ~15 dB in every segment); a clip that shares one
    stretch (a loud hit, a note) with a training clip and nothing else is explained there only, so
    its whole-clip SNR (energy-weighted) can be high while the median segment's is ~0 dB. A sparse
    clip under noise scores low too (its quiet segments are mostly noise): measured in the README.
    `segments`: `[segments, 2]` dB (query energy, residual energy), as `residual_snr_db` returns."""
    if segments is None:
        return float(whole_db)
    rows = np.asarray(segments, dtype=np.float64)
    rows = rows[np.isfinite(rows[:, 0])] if rows.ndim == 2 and len(rows) else np.zeros((0, 2))
    if len(rows) == 0:
        return float(whole_db)
    rows = rows[rows[:, 0] >= rows[:, 0].max() - STEADY_FLOOR_DB]
    return float(min(whole_db, np.median(rows[:, 0] - rows[:, 1])))


def _bin_envelopes(waveform: np.ndarray) -> torch.Tensor:
    """`[..., samples]` -> `[..., bins, frames]`: log magnitude of each bin of a `RECUT_N_FFT`-sample STFT every
    `RECUT_HOP` samples, each bin's mean over time removed. A partial keeps to its own bins, so these move with
    the timing alone; a broadband amplitude envelope (copy-7) also moves with the beating between partials,
    which a phase vocoder rewrites (its lag was off by up to 150 samples on tonal clips, and jumped between
    periods of a low note)."""
    audio = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
    if audio.shape[-1] < RECUT_N_FFT:
        audio = F.pad(audio, (0, RECUT_N_FFT - audio.shape[-1]))
    spec = torch.stft(audio, RECUT_N_FFT, RECUT_HOP, window=torch.hann_window(RECUT_N_FFT), center=False,
                      return_complex=True).abs()
    peak = spec.amax((-2, -1), keepdim=True).clamp_min(1e-12)
    level = torch.log1p(spec / peak * 1000)  # 60 dB below the clip's peak count
    return level - level.mean(-1, keepdim=True)


def recut_start(query: np.ndarray, shifted: np.ndarray, period: int) -> tuple[int, float]:
    """Where (sample of `shifted`, in `[0, period)`) the query starts in `shifted` (the training clip, `period`
    samples, put through the pitch shift whole and tiled): the per-bin envelopes (`_bin_envelopes`) of the query
    cross-correlated with the clip's at every `RECUT_HOP`-sample lag, then every sample within one hop of the
    best. Magnitudes do not see the phases a phase vocoder rewrites, so this start is within a few samples of
    the one a copy of an excerpt was cut at, where the cut's own shift then reproduces the copy. Also returns
    the cosine of the envelopes there (a copy's is high whatever its phases; `RECUT_MIN_AGREEMENT`)."""
    length = len(query)
    wanted = _bin_envelopes(query)
    frames = wanted.shape[-1]
    reference = _bin_envelopes(shifted[: period + length + 2 * RECUT_HOP])
    size = 1 << (reference.shape[-1] + frames - 1).bit_length()
    corr = torch.fft.irfft(torch.fft.rfft(reference, size) * torch.fft.rfft(wanted, size).conj(),
                           size).sum(0)
    lags = min(-(-period // RECUT_HOP), reference.shape[-1] - frames + 1)
    coarse = int(torch.argmax(corr[:lags])) * RECUT_HOP

    near = [(coarse + d) % period for d in range(-RECUT_HOP + 1, RECUT_HOP)]
    # one STFT per start (a batch of 31 took 4x as long as a loop here: memory-bound)
    windows = [_bin_envelopes(shifted[start : start + length])[:, :frames] for start in near]
    agreement = [float((window * wanted).sum()) for window in windows]
    best = int(np.argmax(agreement))
    norms = float(wanted.norm() * windows[best].norm())
    return near[best], agreement[best] / norms if norms > 0 else 0.0


class CopyVerifier:
    """Residual SNR (dB) of a query explained by one training clip under an estimated transform.

    Args:
        sample_rate: Hz of both waveforms.
        n_fft, hop_length: the fine STFT in samples (1024 / 128 at 16 kHz: 64 ms windows, 8 ms frames).
        band_edges_hz: edges (Hz) of the bands that each get their own gain in the magnitude alignment.
        edge_frames: query frames left out at each edge (their windows reach past the clip).
        cut_gap_frames: query frames left out around the cut of a two-piece alignment (the seam:
            the 8 frames whose windows straddle it, and `cut_step` more).
        cut_step: the cut of a two-piece alignment is tried every this many frames.
        recut_shift: for a pitch-shifted candidate, also cut the training clip where the query starts
            (to the sample) and shift only that cut, as a copy made by pitch-shifting an excerpt was
            (`_recut_fits`); the better of the two residuals counts.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 128,
        band_edges_hz: tuple[float, ...] = (0, 150, 300, 600, 1200, 2400, 3400, 4800, 8001),
        edge_frames: int = 4,
        cut_gap_frames: int = 12,
        cut_step: int = 4,
        filter_taps: int = 33,
        compare_taps: tuple[int, ...] = (),
        recut_shift: bool = False,
    ) -> None:
        if filter_taps < 0 or any(t < 0 for t in compare_taps):
            raise ValueError(f"filter_taps={filter_taps}, compare_taps={compare_taps}: expected >= 0 (0: per bin)")
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
        band = np.clip(np.searchsorted(np.asarray(band_edges_hz), freqs, side="right") - 1, 0,
                       len(band_edges_hz) - 2)
        self._band = torch.from_numpy(band)
        self.num_bands = len(band_edges_hz) - 1
        self.band_edges_hz = tuple(float(e) for e in band_edges_hz)
        self.edge_frames = edge_frames
        self.cut_gap_frames = cut_gap_frames
        self.cut_step = cut_step
        self.filter_taps = filter_taps
        self.fits = tuple(dict.fromkeys((filter_taps, *compare_taps)))  # the decision's fit first
        self.recut_shift = recut_shift
        self._window = torch.hann_window(n_fft)

    def describe(self) -> dict:
        return {"n_fft": self.n_fft, "hop_length": self.hop_length, "band_edges_hz": list(self.band_edges_hz),
                "edge_frames": self.edge_frames, "cut_gap_frames": self.cut_gap_frames, "cut_step": self.cut_step,
                "filter_taps": self.filter_taps, **({"recut_shift": True} if self.recut_shift else {})}

    # ------------------------------------------------------------------------------- spectrograms
    def magnitude(self, waveform: np.ndarray) -> torch.Tensor:
        """Mono waveform -> `[bins, frames]` STFT magnitude (float32)."""
        audio = torch.from_numpy(np.asarray(waveform, dtype=np.float32))
        if len(audio) < self.n_fft:
            audio = F.pad(audio, (0, self.n_fft - len(audio)))
        return torch.stft(audio, self.n_fft, self.hop_length, window=self._window, return_complex=True).abs()

    def transformed_key(self, key: np.ndarray, semitones: float, tempo_ratio: float) -> np.ndarray:
        """The training clip as the query would hold it: `tempo_ratio` times faster and `semitones`
        higher (Rubber Band through music/stretch.py, as the copies a model or an editor makes)."""
        key = np.asarray(key, dtype=np.float32)
        if abs(tempo_ratio - 1.0) > 1e-6:
            key = time_stretch(key, self.sample_rate, max(1, round(len(key) / tempo_ratio)))
        if semitones:
            key = pitch_shift(key, self.sample_rate, float(semitones))
        return key

    # ---------------------------------------------------------------------------------- residual
    def residual_snr_db(self, query: np.ndarray, key: np.ndarray, semitones: float = 0.0,
                        tempo_ratio: float = 1.0) -> dict[str, float]:
        """How much of `query` (waveform) the training clip `key` (waveform) explains when played
        `semitones` higher and `tempo_ratio` times faster: `{"waveform": dB, "magnitude": dB}`.

        "magnitude": residual SNR of the best one- or two-piece alignment of fine-hop STFT
        magnitudes, one gain per band and piece (blind to phase and micro-timing); "waveform": at
        that alignment, each piece's lag refined to the sample by cross-correlation, the residual of
        the complex STFT with one complex gain per frequency bin and piece (a filter: gain, EQ,
        low-pass and a sub-sample delay cost nothing; other audio, even with the same hits a few ms
        apart, leaves most of itself)."""
        query = np.asarray(query, dtype=np.float32)
        original = key
        key = self.transformed_key(key, semitones, tempo_ratio)
        q_mag = self.magnitude(query)
        q_frames = q_mag.shape[-1]
        tiled = self._tile(key, len(query))
        period = max(1, round(len(key) / self.hop_length))  # lags past one period repeat
        key_mag = self.magnitude(tiled)[:, : q_frames + period]
        magnitude_snr, layouts = self._best_alignment(q_mag, key_mag, period)
        fits, segments = self._waveform_snr(query, tiled, layouts)
        if self.recut_applies(semitones, tempo_ratio):
            recut, recut_segments = self._recut_fits(query, np.asarray(original, dtype=np.float32), tiled, semitones)
            if recut[self.filter_taps] > fits[self.filter_taps]:
                segments = recut_segments
            fits = {taps: max(value, recut[taps]) for taps, value in fits.items()}
        return {"magnitude": magnitude_snr, "waveform": fits[self.filter_taps], "fits": fits, "segments": segments,
                "steady": steady_snr_db(segments, fits[self.filter_taps])}

    def _tile(self, key: np.ndarray, length: int) -> np.ndarray:
        """`key` repeated to cover a query of `length` samples at any lag (a loop may be rotated and
        the query may be longer than the key)."""
        return np.tile(key, (length + self.n_fft) // max(len(key), 1) + 3)

    def recut_applies(self, semitones: float, tempo_ratio: float) -> bool:
        """Whether `residual_snr_db` also tries the recut for this transform: `recut_shift` on, a
        pitch shift, no tempo change."""
        return bool(self.recut_shift and semitones and abs(tempo_ratio - 1.0) <= 1e-6)

    def recut_fits(self, query: np.ndarray, key: np.ndarray, semitones: float) -> tuple[dict[int, float], np.ndarray]:
        """The recut alone (`_recut_fits`, as `residual_snr_db` runs it for a transform that
        `recut_applies` to): `{taps: dB}` and the time profile. `residual_snr_db` keeps, per fit, the
        larger of this and the whole-clip shift's value, so a stored residual without the recut and
        this give the residual with it (`CopyDetector.add_recut`)."""
        query = np.asarray(query, dtype=np.float32)
        tiled = self._tile(self.transformed_key(key, semitones, 1.0), len(query))
        return self._recut_fits(query, np.asarray(key, dtype=np.float32), tiled, semitones)

    def _waveform_snr(self, query: np.ndarray, tiled: np.ndarray,
                      layouts: list[list[tuple[int, int]]]) -> tuple[dict[int, float], np.ndarray]:
        """Best residual SNR (dB) of the complex STFT of `query` against `tiled` (the key, tiled) over
        `layouts`, for each fit in `self.fits` (`{taps: dB}`; 0 taps: one complex gain per bin).
        Each layout is a list of pieces `(first frame, end frame)`; each piece is placed at its own
        best lag by cross-correlating its samples with the whole tiled key (an exact copy's peak is
        its lag, even where the magnitudes of a repetitive loop line up one beat off too), then
        fitted by a filter of the key.

        Also returns `[segments, 2]`: the query's energy and the decision fit's residual energy (dB)
        in each `SEGMENT_FRAMES` stretch of the best layout (NaN where no piece counts), so that a
        copy's residual can be told from audio shared in a few places (where a copy leaves the same
        residual throughout)."""
        hop, length = self.hop_length, len(query)
        spec_q = self._complex(query)
        best = dict.fromkeys(self.fits, 0.0)
        frames = spec_q.shape[-1]
        best_segments = self._segments(np.zeros(frames), np.zeros(frames))
        for pieces in layouts:
            total, explained = 0.0, dict.fromkeys(self.fits, 0.0)
            own_frames, residual_frames = np.zeros(frames), np.zeros(frames)
            for first, end in pieces:
                a, b = first * hop, min(length, end * hop)
                if b - a < hop:
                    continue
                corr = signal.correlate(tiled[: len(tiled) - length + b], query[a:b], mode="valid", method="fft")
                start = int(np.argmax(corr[a:])) if len(corr) > a else 0  # key sample of the query's sample 0
                segment = tiled[start : start + length]
                spec_k = self._complex(np.pad(segment, (0, length - len(segment))))[:, first:end]
                piece = spec_q[:, first:end]
                cross = (piece * spec_k.conj()).sum(-1)  # [bins]: query . key over the piece's frames
                own = (piece.abs() ** 2).sum(-1)
                power = (spec_k.abs() ** 2).sum(-1)
                for taps in self.fits:
                    explained[taps] += self._explained(cross, power, own, taps)
                total += float(own.sum())
                response = self._response(cross, power, self.filter_taps)
                own_frames[first:end] = (piece.abs() ** 2).sum(0).numpy()
                residual_frames[first:end] = ((piece - response[:, None] * spec_k).abs() ** 2).sum(0).numpy()
            if total > 0:
                for taps, value in explained.items():
                    snr = float(10 * np.log10(total / max(total - value, 1e-12 * total)))
                    if snr > best[taps] and taps == self.filter_taps:
                        best_segments = self._segments(own_frames, residual_frames)
                    best[taps] = max(best[taps], snr)
        return best, best_segments

    def _recut_fits(self, query: np.ndarray, key: np.ndarray, tiled_shifted: np.ndarray,
                    semitones: float) -> tuple[dict[int, float], np.ndarray]:
        """Residual SNR (dB, `{taps: dB}`) and time profile of `query` against the training clip `key`
        cut where the query starts and only then shifted by `semitones` (Rubber Band).

        A phase vocoder's output phases depend on where its input starts, so a pitch-shifted excerpt
        is not an excerpt of the pitch-shifted whole clip: its partials drift in phase against it
        and leave 1-11 dB where an unchanged copy leaves 50+ dB. Shifting the excerpt itself (as a
        copy made by pitch-shifting part of a training clip was made) reproduces it once the cut
        starts on the query's first sample (a few samples off already costs 10+ dB). The start is
        read off per-bin magnitude envelopes (`recut_start`: phase drift moves a waveform
        cross-correlation's peak by up to hundreds of samples on tonal clips, a broadband envelope's
        by tens to 150, copy-7; per-bin magnitudes within a few samples), then corrected by the lag
        left between the query and the shifted cut on the waveforms (within `RECUT_FINE` samples),
        up to `RECUT_STEPS` cuts, none tried twice; none where the envelopes do not agree
        (`RECUT_MIN_AGREEMENT`: 0 dB, no time profile)."""
        length = len(query)
        start, agreement = recut_start(query, tiled_shifted, len(key))
        if agreement < RECUT_MIN_AGREEMENT:  # the shifted clip's magnitudes do not follow the query's: no copy
            return dict.fromkeys(self.fits, 0.0), None
        tiled = np.tile(key, (start + 2 * length + RECUT_STEPS * RECUT_FINE) // max(len(key), 1) + 2)
        frames = self._complex(query).shape[-1]
        edge = min(self.edge_frames, max(0, (frames - 2) // 4))
        best, segments = dict.fromkeys(self.fits, 0.0), None
        zero = length - 1  # a full cross-correlation's zero lag
        tried = set()
        for _ in range(RECUT_STEPS):
            tried.add(start)
            cut = pitch_shift(tiled[start : start + length], self.sample_rate, float(semitones))
            fits, profile = self._waveform_snr(query, np.pad(cut, (0, self.n_fft)), [[(edge, frames - edge)]])
            if segments is None or fits[self.filter_taps] > best[self.filter_taps]:
                segments = profile
            best = {taps: max(best[taps], value) for taps, value in fits.items()}
            if best[self.filter_taps] >= RECUT_DONE_DB:
                break
            # the query is `lag` samples later than the cut: a few samples off, the waveforms say by how much
            lags = signal.correlate(query, cut, mode="full", method="fft")
            lag = int(np.argmax(lags[zero - RECUT_FINE : zero + RECUT_FINE + 1])) - RECUT_FINE
            if (start - lag) % len(key) in tried:
                break
            start = (start - lag) % len(key)
        return best, segments

    @staticmethod
    def _segments(own: np.ndarray, residual: np.ndarray) -> np.ndarray:
        """Per-frame energies -> `[segments, 2]` dB (query, residual) over `SEGMENT_FRAMES` frames."""
        count = max(1, len(own) // SEGMENT_FRAMES)
        cut = count * SEGMENT_FRAMES
        own_sum = own[:cut].reshape(count, -1).sum(1)
        residual_sum = residual[:cut].reshape(count, -1).sum(1)
        with np.errstate(divide="ignore"):
            out = np.stack([10 * np.log10(own_sum), 10 * np.log10(np.maximum(residual_sum, 1e-12 * own_sum))], 1)
        out[own_sum <= 0] = np.nan
        return out

    def _response(self, cross: torch.Tensor, power: torch.Tensor, taps: int) -> torch.Tensor:
        """`[bins]` complex frequency response of the least-squares fit (see `_explained`)."""
        if taps == 0:
            return cross / power.clamp_min(1e-12)
        bins = torch.arange(len(cross), dtype=torch.float64)
        delays = torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2
        basis = torch.exp(-2j * np.pi * bins[:, None] * delays[None] / self.n_fft)  # [bins, taps]
        normal = (basis.conj().T @ (power[:, None] * basis)).real
        rhs = (basis.conj().T @ cross).real
        normal = normal + 1e-9 * normal.diagonal().mean().clamp_min(1e-30) * torch.eye(taps, dtype=torch.float64)
        return basis @ torch.linalg.solve(normal, rhs).to(torch.complex128)

    def _explained(self, cross: torch.Tensor, power: torch.Tensor, own: torch.Tensor, taps: int) -> float:
        """Query energy (summed over the piece) that the key explains through the least-squares filter.

        `cross [bins]` (complex): sum over frames of query x conj(key); `power`, `own [bins]`: the
        key's and the query's energy per bin. `taps` 0: one complex gain per bin (any phase per bin:
        a sustained note of another rendition is explained too). Otherwise a real FIR filter of
        `taps` samples centred on the aligned lag, H(f) = sum_l h_l exp(-2 pi i f l / n_fft): a
        gain, a low-pass, an EQ and a sub-sample delay are short filters; another rendition's
        phases, independent from partial to partial, are not. Least squares over every bin and
        frame at once (normal equations in h), so the explained energy is b . h."""
        if taps == 0:
            gained = cross.abs() ** 2 / power.clamp_min(1e-12)
            return float(torch.minimum(gained, own).sum())
        bins = torch.arange(len(cross), dtype=torch.float64)
        delays = torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2
        basis = torch.exp(-2j * np.pi * bins[:, None] * delays[None] / self.n_fft)  # [bins, taps]
        normal = (basis.conj().T @ (power[:, None] * basis)).real  # [taps, taps]
        rhs = (basis.conj().T @ cross).real  # [taps]
        normal = normal + 1e-9 * normal.diagonal().mean().clamp_min(1e-30) * torch.eye(taps, dtype=torch.float64)
        h = torch.linalg.solve(normal, rhs)
        return float(min(float(rhs @ h), float(own.sum())))

    def _complex(self, waveform: np.ndarray) -> torch.Tensor:
        audio = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
        if len(audio) < self.n_fft:
            audio = F.pad(audio, (0, self.n_fft - len(audio)))
        return torch.stft(audio, self.n_fft, self.hop_length, window=self._window, return_complex=True).to(
            torch.complex128)

    def _best_alignment(self, query: torch.Tensor, key: torch.Tensor,
                        period: int) -> tuple[float, list[list[tuple[int, int]]]]:
        """Residual SNR (dB) of the best one- or two-piece alignment of `query [bins, Tq]` on `key
        [bins, Tk]` (lags 0 .. `period` - 1, the key tiled), each piece with one gain per band.

        Coarse to fine: every lag on frames pooled by `COARSE` (32 ms), then every fine lag within
        `COARSE + 2` frames of the coarse winners (the whole-clip lag and both pieces' lags)."""
        length = query.shape[-1]
        lags = min(period, key.shape[-1] - length + 1)
        if lags < 1:
            raise ValueError(f"the key ({key.shape[-1]} frames) is shorter than the query ({length})")
        key = key[:, : length + lags - 1]
        pool = COARSE if length >= 8 * COARSE else 1
        coarse_q = F.avg_pool1d(query[None], pool, pool)[0]
        coarse_k = F.avg_pool1d(key[None], pool, pool)[0]
        coarse_lags = torch.arange(min(-(-lags // pool), coarse_k.shape[-1] - coarse_q.shape[-1] + 1))
        edge = max(1, self.edge_frames // pool)
        _, winners, _ = self._search(coarse_q, coarse_k, coarse_lags, edge, -(-self.cut_gap_frames // pool), 1)
        reach = pool + 2 if pool > 1 else 0
        fine = torch.unique(torch.cat([torch.arange(w * pool - reach, w * pool + reach + 1) for w in winners]))
        fine = fine[(fine >= 0) & (fine < lags)]
        snr, _, layouts = self._search(query, key, fine, self.edge_frames, self.cut_gap_frames, self.cut_step)
        return snr, layouts

    def _search(self, query: torch.Tensor, key: torch.Tensor, lags: torch.Tensor, edge: int, gap: int,
                step: int) -> tuple[float, list[int], list[list[tuple[int, int]]]]:
        """Best residual SNR (dB) over the given `lags` (query frame t on key frame t + lag): one
        piece, or two pieces cut every `step` frames with `gap` frames left out at the cut; `edge`
        frames left out at each end. Returns it, the lags of the best one- and two-piece fits, and the
        pieces `(first frame, end frame)` of the one-piece fit and of the best two-piece fit."""
        length = query.shape[-1]
        bands = self.num_bands
        band = self._band[: query.shape[0]]
        one_hot = F.one_hot(band, bands).T.float()  # [bands, bins]
        low = int(lags.min())
        span = key[:, low : int(lags.max()) + length]  # the key frames any of the lags reach
        index = (torch.arange(length)[:, None] + (lags - low)[None]).expand(bands, -1, -1)  # [B, Tq, lags]
        # per band: query . key at every (query frame, key frame) by one matmul, then the diagonals
        dots = torch.stack([query[band == b].T @ span[band == b] for b in range(bands)]).gather(2, index)
        key_energy = (one_hot @ span**2)[:, index[0]]  # [B, Tq, lags]
        query_energy = one_hot @ query**2  # [B, Tq]
        edge = min(edge, max(0, (length - 2) // 4))
        for x in (dots, key_energy, query_energy):
            x[:, :edge] = 0
            x[:, length - edge :] = 0
        total = float(query_energy.sum())
        if total <= 0:
            return -float("inf"), [0], []
        # float64 prefix sums: a piece's sums are differences of two of them
        dot_sum = F.pad(dots.double().cumsum(1), (0, 0, 1, 0))  # [B, Tq + 1, lags]
        key_sum = F.pad(key_energy.double().cumsum(1), (0, 0, 1, 0))
        query_sum = F.pad(query_energy.double().cumsum(1), (1, 0))  # [B, Tq + 1]

        def explained(dot: torch.Tensor, energy: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
            # least-squares gain per band: energy explained = dot^2 / |key|^2, never more than the
            # piece's own query energy in that band (Cauchy-Schwarz; guards rounding where |key| ~ 0)
            gained = dot.clamp_min(0) ** 2 / energy.clamp_min(1e-9)
            return torch.minimum(gained, own.clamp_min(0)).sum(0)

        whole = explained(dot_sum[:, -1], key_sum[:, -1], query_sum[:, -1:])  # [lags]
        best_explained, best_total = float(whole.max()), total
        winners = [int(lags[int(whole.argmax())])]
        layouts = [[(edge, length - edge)]]
        gap = min(gap, max(0, length - 2 * edge - 2))
        cuts = torch.arange(edge + 1, length - edge - gap, step)
        if len(cuts):
            head = explained(dot_sum[:, cuts], key_sum[:, cuts], query_sum[:, cuts, None]).max(dim=-1)
            tail_own = (query_sum[:, -1:] - query_sum[:, cuts + gap])[..., None]
            tail = explained(dot_sum[:, -1:] - dot_sum[:, cuts + gap], key_sum[:, -1:] - key_sum[:, cuts + gap],
                             tail_own).max(dim=-1)
            # the gap's own query energy is not counted on either side
            gap_energy = (query_sum[:, cuts + gap] - query_sum[:, cuts]).sum(0)
            fraction = (head.values + tail.values) / (total - gap_energy).clamp_min(1e-12)
            k = int(fraction.argmax())
            winners += [int(lags[int(head.indices[k])]), int(lags[int(tail.indices[k])])]
            cut = int(cuts[k])
            layouts.append([(edge, cut), (cut + gap, length - edge)])
            if float(fraction[k]) > best_explained / total:
                best_explained = float(head.values[k] + tail.values[k])
                best_total = float(total - gap_energy[k])
        residual = max(best_total - best_explained, 1e-12 * best_total)
        return float(10 * np.log10(best_total / residual)), winners, layouts
