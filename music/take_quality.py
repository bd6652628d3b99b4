"""Is a take usable? One detector of the failures a producer would throw away, with thresholds taken from
real clips of the kinds a checkpoint was trained on. Seconds, Hz and dBFS throughout.

A take is measured once (`measure_take`) and judged against `TakeThresholds`:
- near-silence: its loudest frame's RMS below `silent_dbfs`;
- level: its whole-clip RMS, read as if the take peaked at `TAKE_PEAK_DBFS` (its served level: level is a
  gain away from right, so this is its crest factor below that peak), below `quiet_dbfs` ("too quiet") or
  above `loud_dbfs` ("too loud");
- noise wash: the `WASH_PERCENTILE`th percentile of the spectral flatness of its loud frames (within
  `LOUD_WINDOW_DB` of the loudest) above `wash_flatness`: broadband noise with weak hits on top scores
  high in many loud frames, not only in the median one (white noise scores about 0.56, a tone near 0);
- drone: the band below `DRONE_BAND_HZ` never falls silent: its quiet frames (the `DRONE_PERCENTILE`th
  percentile of its frame energy) within `drone_floor_db` of the loudest frame's energy, a sustained low tone
  under the hits where a real kit's kicks decay;
- dropout: a run of frames more than `DROPOUT_DB` below the loudest, between the first and the last
  sounding frame, longer than `dropout_s` seconds;
- saturation: more than `clipped_fraction` of samples at |x| >= 0.999.

`calibrate` sets the thresholds of each kind from real clips so that the detector flags at most a
target share (2%) of them; `QualityGate` holds one set per kind, is saved as `quality_gate.json` beside a
checkpoint (`GATE_FILE`) and falls back to `DEFAULT_THRESHOLDS` (and says so) where a folder has none.
"""
from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import librosa
import numpy as np

from music.audio import resample

ANALYSIS_RATE = 16000
N_FFT = 1024
HOP = 256
# A loud frame is within this many dB of the clip's loudest frame.
LOUD_WINDOW_DB = 20.0
# A dropout frame is more than this many dB below the clip's loudest frame.
DROPOUT_DB = 45.0
# The drone check's low band (Hz) and which of its frames it reads (the percentile of their energy: the
# quiet ones, between kicks). The loops model's takes keep this band within 13 dB of their loudest frame in
# 5.5% of takes, against 1.1% of the real drum clips (valid and test): among clips with a crest factor under
# 12 dB, real 808 patterns' sub-bass rests between notes (median -38 dB), the model's does not (-11 dB).
DRONE_BAND_HZ = 150.0
DRONE_PERCENTILE = 10.0
# The percentile of loud-frame flatness that judges a wash: a wash covers many loud frames, so a high
# percentile catches it where the median (one typical frame) lets hits on top of it through.
WASH_PERCENTILE = 90.0
GATE_FILE = "quality_gate.json"
# 2: level limits on the served level (`TAKE_PEAK_DBFS`), and the drone check; a version-1 file's level limits
# were on the mastered level, and it has no drone limit.
GATE_VERSION = 2
# What `calibrate` aims for: at most this share of real clips of a kind flagged.
TARGET_FLAG_RATE = 0.02
# The peak at which every clip's level is read (`TakeMeasures.served_level_dbfs`): the mel pipelines serve a
# take made from scratch at a -1 dBFS peak (`models.pipeline_base.OUTPUT_PEAK`), while the demo corpus is
# mastered by loudness (-20 dBFS RMS within 5 dB). Level is a gain away from right, so takes and real clips
# are compared as if both peaked here: a take's level is then its crest factor below this peak, held against
# the real clips' crest factors. Read at their mastered level instead (before: RMS about -25 to -19 dBFS), the
# limits failed real clips with a crest factor under 12 dB (808 patterns under a sustained sub-bass) once at a
# take's peak: the gates calibrated that way flagged 9-11% of real drum and 18-20% of real pitched clips "too
# loud" there. The loops model's 14 "too loud" takes of 256 were such patterns, 5 of them with a low band that
# never rests (the drone check below).
TAKE_PEAK_DBFS = -1.0
# A take is too quiet or too loud (or a drone) only this many dB beyond the real clips' range of served
# levels (of low-band floors): at the bare tails of the 60-200 valid clips of a kind (no margin), 3.3% of the
# corpus's band and 1.9% of its pitched test clips were flagged; with 1 dB, none.
LEVEL_MARGIN_DB = 1.0
# Small valid sets (60 to 200 clips of a kind) place a tail too tight: calibrated at the bare 1% quantile
# of the valid clips, 3.1% of the corpus's pitched and 3.3% of its band test clips were flagged; from the
# 0.5% quantile (`calibrate`'s start) with the wash and dropout limits widened by this factor, none.
TAIL_HEADROOM = 1.1
# The kinds of take a gate can hold thresholds for ("any": every kind pooled, used when a take's kind is
# unknown).
KINDS = ("drums", "pitched", "band", "any")
REASONS = ("silent", "too quiet", "too loud", "noise wash", "drone", "dropout", "clipped")


@dataclass(frozen=True)
class TakeMeasures:
    """The numbers behind a verdict (see the module docstring).

    Attributes:
        peak_rms_dbfs: the loudest frame's RMS, dBFS.
        level_dbfs: the whole clip's RMS, dBFS, as it is.
        served_level_dbfs: the whole clip's RMS, dBFS, with the clip scaled to peak at `TAKE_PEAK_DBFS`
            (what the level checks judge; the level itself for digital silence).
        wash_flatness: the `WASH_PERCENTILE`th percentile of loud-frame spectral flatness (0..1).
        low_floor_db: the `DRONE_PERCENTILE`th percentile of the energy below `DRONE_BAND_HZ` per frame, dB
            relative to the loudest frame's whole energy (near 0: the low band never rests).
        median_flatness: the median loud-frame spectral flatness (0..1), for reports.
        dropout_s: the longest inner run of near-silent frames, seconds.
        clipped_fraction: share of samples at |x| >= 0.999.
    """

    peak_rms_dbfs: float
    level_dbfs: float
    served_level_dbfs: float
    wash_flatness: float
    low_floor_db: float
    median_flatness: float
    dropout_s: float
    clipped_fraction: float


@dataclass(frozen=True)
class TakeThresholds:
    """Where a take counts as unusable (see the module docstring); each limit is exclusive.

    Attributes:
        silent_dbfs: loudest frame RMS below this (dBFS) is near-silence.
        quiet_dbfs: served level (`TakeMeasures.served_level_dbfs`, dBFS) below this is too quiet.
        loud_dbfs: served level above this (dBFS) is too loud.
        wash_flatness: `TakeMeasures.wash_flatness` above this is a noise wash.
        drone_floor_db: `TakeMeasures.low_floor_db` above this (dB) is a drone (0: never).
        dropout_s: an inner dropout longer than this (seconds).
        clipped_fraction: more than this share of clipped samples is saturation.
    """

    silent_dbfs: float = -45.0
    quiet_dbfs: float = -50.0
    loud_dbfs: float = -3.0
    wash_flatness: float = 0.45
    drone_floor_db: float = 0.0
    dropout_s: float = 1.0
    clipped_fraction: float = 0.001

    def to_dict(self) -> dict[str, float]:
        return {key: round(float(value), 6) for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> TakeThresholds:
        known = {item.name for item in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"Unknown quality threshold(s) {sorted(unknown)}; known: {sorted(known)}.")
        return cls(**{key: float(value) for key, value in data.items()})


# The fallback for checkpoints without a `quality_gate.json`: lenient fixed limits (silence -45 dBFS,
# dropouts 1 s and 0.1% clipped samples as before calibration existed; a wash limit of 0.45, above the
# 90th-percentile flatness of every real clip of the demo corpus (at most 0.37) and below white noise
# (about 0.56)), with level limits wide enough for any clip at a -1 dBFS peak (crest factors of 2 to 49 dB)
# and no drone check.
DEFAULT_THRESHOLDS = TakeThresholds()


def analysis_mono(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """`[samples]` or `[channels, samples]` audio at `sample_rate` Hz as float32 mono at `ANALYSIS_RATE`."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim > 1:
        audio = audio.reshape(-1, audio.shape[-1]).mean(axis=0)
    return resample(audio, sample_rate, ANALYSIS_RATE)


def _longest_run(flags: np.ndarray) -> int:
    """Length of the longest run of True in a boolean array."""
    if not flags.any():
        return 0
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[::2]).max())


def measure_take(audio: np.ndarray, sample_rate: int) -> TakeMeasures:
    """The measures of a take: `audio` is `[samples]` or `[channels, samples]` at `sample_rate` Hz."""
    raw = np.asarray(audio, dtype=np.float32)
    magnitude = np.abs(raw)
    clipped = float(np.mean(magnitude >= 0.999)) if raw.size else 0.0
    peak = float(magnitude.max()) if raw.size else 0.0
    mono = analysis_mono(raw, sample_rate)
    level = 10 * math.log10(max(float(np.mean(mono.astype(np.float64) ** 2)) if mono.size else 0.0, 1e-20))
    served_level = level + TAKE_PEAK_DBFS - 20 * math.log10(peak) if peak > 0 else level
    if mono.size < N_FFT:
        mono = np.pad(mono, (0, N_FFT - mono.size))
    rms_db = 20 * np.log10(np.maximum(librosa.feature.rms(y=mono, frame_length=N_FFT, hop_length=HOP)[0], 1e-10))
    spectrum = np.abs(librosa.stft(mono, n_fft=N_FFT, hop_length=HOP))  # one STFT for flatness and the low band
    flatness = librosa.feature.spectral_flatness(S=spectrum, n_fft=N_FFT, hop_length=HOP)[0]
    power = spectrum**2
    low = power[librosa.fft_frequencies(sr=ANALYSIS_RATE, n_fft=N_FFT) < DRONE_BAND_HZ].sum(axis=0)
    loud_energy = max(float(power.sum(axis=0).max()), 1e-20)
    low_floor = 10 * math.log10(max(float(np.percentile(low, DRONE_PERCENTILE)), 1e-20) / loud_energy)
    loudest = float(rms_db.max())
    loud = flatness[rms_db >= loudest - LOUD_WINDOW_DB]
    quiet = rms_db < loudest - DROPOUT_DB
    sounding = np.flatnonzero(~quiet)
    inner = quiet[sounding[0]: sounding[-1] + 1] if sounding.size else quiet[:0]
    return TakeMeasures(
        peak_rms_dbfs=loudest, level_dbfs=level, served_level_dbfs=served_level,
        wash_flatness=float(np.percentile(loud, WASH_PERCENTILE)), low_floor_db=low_floor,
        median_flatness=float(np.median(loud)),
        dropout_s=_longest_run(inner) * HOP / ANALYSIS_RATE, clipped_fraction=clipped)


def take_reasons(measures: TakeMeasures, thresholds: TakeThresholds = DEFAULT_THRESHOLDS) -> list[str]:
    """Why a take is unusable, in `REASONS` order ("silent", "too quiet", "too loud", "noise wash", "drone",
    "dropout", "clipped"); empty for a usable take. A silent take is not also judged for level (its served
    level is its noise's), washes or dropouts."""
    reasons = []
    if measures.peak_rms_dbfs < thresholds.silent_dbfs:
        reasons.append("silent")
    else:
        if measures.served_level_dbfs < thresholds.quiet_dbfs:
            reasons.append("too quiet")
        if measures.served_level_dbfs > thresholds.loud_dbfs:
            reasons.append("too loud")
        if measures.wash_flatness > thresholds.wash_flatness:
            reasons.append("noise wash")
        if measures.low_floor_db > thresholds.drone_floor_db:
            reasons.append("drone")
        if measures.dropout_s > thresholds.dropout_s:
            reasons.append("dropout")
    if measures.clipped_fraction > thresholds.clipped_fraction:
        reasons.append("clipped")
    return reasons


def flag_rate(measures: Sequence[TakeMeasures], thresholds: TakeThresholds) -> float:
    """Share of `measures` with at least one reason (0 for none)."""
    return float(np.mean([bool(take_reasons(m, thresholds)) for m in measures])) if measures else 0.0


def _quantile_thresholds(measures: Sequence[TakeMeasures], tail: float, floor: TakeThresholds) -> TakeThresholds:
    """Thresholds at the `tail` share of each measure's outer end (both ends for the level), never
    stricter than the physical floors of `floor` for silence and clipping."""
    values = {key: np.array([getattr(m, key) for m in measures], dtype=np.float64)
              for key in ("served_level_dbfs", "wash_flatness", "low_floor_db", "dropout_s", "clipped_fraction",
                          "peak_rms_dbfs")}
    high = lambda key: float(np.quantile(values[key], 1.0 - tail, method="higher"))
    low = lambda key: float(np.quantile(values[key], tail, method="lower"))
    return TakeThresholds(
        silent_dbfs=min(floor.silent_dbfs, low("peak_rms_dbfs")),
        quiet_dbfs=low("served_level_dbfs") - LEVEL_MARGIN_DB,
        loud_dbfs=min(high("served_level_dbfs") + LEVEL_MARGIN_DB, -0.5),
        wash_flatness=high("wash_flatness") * TAIL_HEADROOM,
        drone_floor_db=min(high("low_floor_db") + LEVEL_MARGIN_DB, 0.0),
        # A real clip's own rests (a break's gap) are not dropouts: never below a quarter second.
        dropout_s=max(high("dropout_s") * TAIL_HEADROOM, 0.25),
        clipped_fraction=max(floor.clipped_fraction, high("clipped_fraction")))


def calibrate(measures: Sequence[TakeMeasures], target: float = TARGET_FLAG_RATE) -> TakeThresholds:
    """Thresholds under which at most `target` of `measures` (real clips of one kind) are flagged: each
    measure's tail share starts at `target / 4` (six measures: their union is at most about `target`)
    and shrinks until the union of the reasons fits `target`; wash and dropout limits get `TAIL_HEADROOM`.

    Raises:
        ValueError: for fewer than 20 clips (a 2% tail cannot be estimated from fewer).
    """
    if len(measures) < 20:
        raise ValueError(f"Calibration needs at least 20 real clips of a kind, got {len(measures)}.")
    tail = target / 4
    while True:
        thresholds = _quantile_thresholds(measures, tail, DEFAULT_THRESHOLDS)
        if flag_rate(measures, thresholds) <= target or tail <= 1e-4:
            return thresholds
        tail /= 1.5


@dataclass
class QualityGate:
    """A checkpoint's quality gate: thresholds per kind of take, and where they came from.

    Attributes:
        thresholds: per kind (`KINDS`); "any" judges a take of unknown kind.
        calibrated: True when computed from real clips; False for `DEFAULT_THRESHOLDS`.
        report: how it was calibrated (clip counts, flag rates on the valid and test splits per kind).
        note: a line for the user when the gate is the fallback (e.g. "no quality_gate.json ...").
    """

    thresholds: dict[str, TakeThresholds] = field(default_factory=lambda: {"any": DEFAULT_THRESHOLDS})
    calibrated: bool = False
    report: dict = field(default_factory=dict)
    note: str = ""

    def for_kind(self, kind: str | None) -> TakeThresholds:
        """The thresholds of `kind`, or of "any" when the gate has none for it."""
        return self.thresholds.get(kind or "any") or self.thresholds["any"]

    def reasons(self, audio: np.ndarray, sample_rate: int, kind: str | None = None) -> list[str]:
        """Why `audio` (`[samples]` or `[channels, samples]` at `sample_rate` Hz) is unusable; [] when usable."""
        return self.reasons_of(measure_take(audio, sample_rate), kind)

    def reasons_of(self, measures: TakeMeasures, kind: str | None = None) -> list[str]:
        """`take_reasons` of measured take under the thresholds of `kind`."""
        return take_reasons(measures, self.for_kind(kind))

    def to_dict(self) -> dict:
        return {"version": GATE_VERSION, "calibrated": self.calibrated, "wash_percentile": WASH_PERCENTILE,
                "thresholds": {kind: value.to_dict() for kind, value in self.thresholds.items()},
                "report": self.report}

    @classmethod
    def from_dict(cls, data: dict) -> QualityGate:
        thresholds = {str(kind): TakeThresholds.from_dict(value) for kind, value in data["thresholds"].items()}
        if "any" not in thresholds:
            raise ValueError(f"A quality gate needs thresholds for 'any' kind, got {sorted(thresholds)}.")
        note = ("its level limits were calibrated on real clips at their mastered level, not at a take's peak: "
                "recalibrate with `python -m training.quality_gate CHECKPOINT`") if data.get("version", 1) < 2 else ""
        return cls(thresholds, bool(data.get("calibrated", True)), dict(data.get("report", {})), note)

    def save(self, folder: str | Path) -> Path:
        """Write `GATE_FILE` into `folder`; returns its path."""
        path = Path(folder) / GATE_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path


def load_gate(folder: str | Path | None) -> QualityGate:
    """The gate saved beside a checkpoint (`folder/quality_gate.json`), else the default one with a `note`
    saying so (also for an unreadable file, a hub id or no folder)."""
    path = Path(folder) / GATE_FILE if folder else None
    if path is None or not path.is_file():
        return QualityGate(note=f"no {GATE_FILE} beside this checkpoint: the default quality limits are used "
                                "(calibrate with `python -m training.quality_gate CHECKPOINT`)")
    try:
        return QualityGate.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as error:
        return QualityGate(note=f"{GATE_FILE} unreadable ({error}): the default quality limits are used")


def calibrate_gate(valid: dict[str, Sequence[TakeMeasures]], test: dict[str, Sequence[TakeMeasures]] | None = None,
                   target: float = TARGET_FLAG_RATE, source: str = "") -> QualityGate:
    """A gate from measures of real clips per kind: each kind's thresholds calibrated on its `valid`
    clips, "any" on all of them pooled; the report gives each kind's flag rate on `valid` and `test`.
    Kinds with fewer than 20 valid clips get no thresholds of their own (they are judged by "any")."""
    pooled = [m for kind_measures in valid.values() for m in kind_measures]
    thresholds = {"any": calibrate(pooled, target)}
    for kind, kind_measures in valid.items():
        if kind != "any" and len(kind_measures) >= 20:
            thresholds[kind] = calibrate(kind_measures, target)
    gate = QualityGate(thresholds, calibrated=True)
    rates = {}
    for split, groups in (("valid", valid), ("test", test or {})):
        for kind, kind_measures in groups.items():
            rates.setdefault(kind, {})[split] = {"clips": len(kind_measures),
                                                 "flagged": flag_rate(kind_measures, gate.for_kind(kind))}
        everything = [m for kind_measures in groups.values() for m in kind_measures]
        if everything:
            rates.setdefault("any", {})[split] = {"clips": len(everything),
                                                  "flagged": flag_rate(everything, gate.for_kind("any"))}
    gate.report = {"target_flag_rate": target, "calibrated_on": "valid", "source": source, "kinds": rates}
    return gate


def kind_of_row(row: dict) -> str:
    """The kind of a corpus metadata row: "drums", "band" (drums with pitched parts) or "pitched"."""
    subset = row.get("subset") or str(row.get("file_name", "")).split("/")[0]
    return {"drums": "drums", "band": "band"}.get(subset, "pitched")


# Words a prompt uses for drum kits and for pitched parts (the corpus's captions; a key implies pitch),
# matched at the start of a word ("drum" in "drums", not "beat" in "afrobeat"), after genre names that
# contain them are removed.
DRUM_WORDS = ("drum", "kit", "kick", "snare", "hi-hat", "hihat", "break", "beat", "percussion", "clap", "ride",
              "tom")
PITCHED_WORDS = ("major", "minor", "bass", "chord", "melod", "arpeggi", "piano", "chorale", "lead", "pad",
                 "organ", "guitar", "string", "choir", "synth", "flute", "brass")
GENRE_NAMES = re.compile(r"drum\s*(?:and|&|'?n'?)\s*bass|\bdnb\b")


def _names_any(text: str, words: Iterable[str]) -> bool:
    return any(re.search(r"\b" + re.escape(word), text) for word in words)


def kind_of_prompt(prompt: str, kinds: Iterable[str]) -> str | None:
    """The kind of take a prompt asks for among a gate's `kinds` (drum words only: "drums"; pitched
    words only: "pitched"; both: "band"); None when the prompt says neither or the kind has no thresholds."""
    text = GENRE_NAMES.sub(" ", (prompt or "").lower())
    drums, pitched = _names_any(text, DRUM_WORDS), _names_any(text, PITCHED_WORDS)
    kind = "band" if drums and pitched else "drums" if drums else "pitched" if pitched else None
    return kind if kind in set(kinds) else None


def floor_between_hits(audio: np.ndarray, sample_rate: int, loud_percentile: float = 95.0,
                       range_db: float = 80.0) -> float:
    """Level of the quietest frame between consecutive onsets, in dB relative to the clip's loud level.

    (A per-clip measure of how far a take falls silent between hits, for `evaluation.quality` and for
    calibrating a checkpoint's floor stage, `training.floor_stage`.)

    Frame RMS (1024-sample frames, hop 256 at 16 kHz) in dB relative to the `loud_percentile`
    percentile of all frames, floored at -`range_db` (the mel images' own range, top_db 80: digital
    silence in a rendered real clip would otherwise count as -190 dB). For every pair of consecutive
    onsets (librosa's onset detector) at least two frames apart, the quietest frame between them; the
    median of those minima. A noise floor under the hits raises this number (closer to 0). NaN when the
    clip has fewer than two onsets.
    """
    mono = analysis_mono(audio, sample_rate)
    if mono.size < N_FFT:
        mono = np.pad(mono, (0, N_FFT - mono.size))
    rms_db = 20 * np.log10(np.maximum(librosa.feature.rms(y=mono, frame_length=N_FFT, hop_length=HOP)[0], 1e-10))
    rms_db = np.maximum(rms_db - np.percentile(rms_db, loud_percentile), -range_db)
    onsets = librosa.onset.onset_detect(y=mono, sr=ANALYSIS_RATE, hop_length=HOP, units="frames")
    minima = [rms_db[start:end].min() for start, end in itertools.pairwise(onsets) if end - start >= 2]
    return float(np.median(minima)) if minima else float("nan")
