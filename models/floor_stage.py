"""A calibrated floor stage: a per-band downward expander on the mel, between the model and the decoder.

A diffusion model's mel often keeps a floor of hiss and rumble between hits that real clips of its kind do
not have (the bundled loops model: about 12 dB above real drums, while real clips sent through the same mel
and Griffin-Lim stay within 1.4 dB, so the floor is the model's). This stage pushes quiet mel bins further
down, band by band, and leaves hits and their decays alone:

- level: every mel bin in dB relative to its clip's loudest bin (the model knows only relative levels);
- static curve, per band: 0 dB of gain at or above the band's threshold, `ratio - 1` dB of cut per dB below
  it (a downward expander), a soft knee `knee_db` wide around the threshold, at most `max_cut_db` of cut;
- time: the gain opens `lookahead_frames` early (a hit's attack is never cut), stays open `hold_frames`
  after the band drops below its threshold, and then closes with a one-pole release of `release_frames`
  (a decay fades as it did, then the floor under it falls away).

`FloorStage` holds one threshold per mel band; `training.floor_stage` calibrates them for a checkpoint
against real clips of the kinds it was trained on, and saves them beside it as `floor_stage.json`
(`FLOOR_FILE`), which `models.loading.load_pipeline` attaches to the pipeline (`pipeline.floor_stage`).
Frames are STFT frames of the mel (16 ms at 16 kHz with hop 256); levels in dB.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

FLOOR_FILE = "floor_stage.json"
# Smallest mel power taken into logs (librosa.power_to_db's amin).
_AMIN = 1e-10


@dataclass
class FloorStage:
    """A per-band downward expander of mel power (see the module docstring).

    Attributes:
        thresholds_db: one per mel band (row 0 the lowest), dB relative to the clip's loudest bin; a band's
            bins below it are cut.
        ratio: expansion ratio below the threshold (2: every dB under it becomes 2 dB under it).
        knee_db: width of the soft knee centred on the threshold, dB (0: a hard knee).
        max_cut_db: the most a bin is cut, dB.
        lookahead_frames: frames the gain opens before a band rises above its threshold.
        hold_frames: frames the gain stays open after a band falls below its threshold.
        release_frames: time constant of the gain closing after the hold, frames.
        report: how it was calibrated (clips, measured floors before and after).
    """

    thresholds_db: list[float]
    ratio: float = 2.0
    knee_db: float = 6.0
    max_cut_db: float = 30.0
    lookahead_frames: int = 1
    hold_frames: int = 2
    release_frames: float = 3.0
    report: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.thresholds_db or not all(math.isfinite(value) for value in self.thresholds_db):
            raise ValueError(f"thresholds_db must be a non-empty list of finite dB values, got {self.thresholds_db!r}.")
        if not 1.0 <= self.ratio <= 100.0:
            raise ValueError(f"ratio must be in [1, 100], got {self.ratio!r}.")
        if not 0.0 <= self.knee_db <= 40.0 or not 0.0 <= self.max_cut_db <= 120.0:
            raise ValueError(f"knee_db must be in [0, 40] and max_cut_db in [0, 120], got {self.knee_db!r} and "
                             f"{self.max_cut_db!r}.")
        if int(self.lookahead_frames) < 0 or int(self.hold_frames) < 0 or not self.release_frames >= 0:
            raise ValueError("lookahead_frames, hold_frames and release_frames must be at least 0, got "
                             f"{self.lookahead_frames!r}, {self.hold_frames!r}, {self.release_frames!r}.")

    # ---- the stage -----------------------------------------------------------------------

    def static_gain_db(self, level_db: torch.Tensor) -> torch.Tensor:
        """Gain in dB (<= 0) of bins at `level_db` `[..., bands, frames]` (dB re the clip's loudest bin)."""
        thresholds = torch.tensor(self.thresholds_db, dtype=level_db.dtype, device=level_db.device)[:, None]
        over = level_db - thresholds
        slope = self.ratio - 1.0
        half = self.knee_db / 2
        gain = torch.where(over < 0, slope * over, torch.zeros_like(over))
        if half > 0:
            knee = -slope * (over - half).square() / (2 * self.knee_db)
            gain = torch.where(over.abs() <= half, knee, torch.where(over > half, torch.zeros_like(over), gain))
        return gain.clamp_min(-self.max_cut_db)

    def smooth_gain_db(self, gain_db: torch.Tensor) -> torch.Tensor:
        """Gain `[..., bands, frames]` in dB through look-ahead, hold and release (see the module docstring)."""
        shape = gain_db.shape
        flat = gain_db.reshape(-1, 1, shape[-1])
        before, after = int(self.hold_frames), int(self.lookahead_frames)
        if before or after:
            # The most open gain (max) over [t - hold, t + lookahead]: opens early, closes late.
            padded = torch.nn.functional.pad(flat, (before, after), value=-float(self.max_cut_db))
            flat = torch.nn.functional.max_pool1d(padded, kernel_size=before + after + 1, stride=1)
        flat = flat[:, 0]
        if self.release_frames > 0:
            # A recursive filter that opens at once and closes with a one-pole release: scipy's lfilter has
            # no such asymmetric form, and the loop runs over frames only (a few hundred, whole batches at once).
            keep = math.exp(-1.0 / self.release_frames)
            smoothed = torch.empty_like(flat)
            current = flat[:, 0]
            for frame in range(flat.shape[-1]):
                target = flat[:, frame]
                current = torch.where(target >= current, target, keep * current + (1 - keep) * target)
                smoothed[:, frame] = current
            flat = smoothed
        return flat.reshape(shape)

    def gain_db(self, mel_power: torch.Tensor, db_per_decade: float = 10.0) -> torch.Tensor:
        """The stage's gain in dB for mel power `[batch, 1, bands, frames]` (same shape)."""
        self.check_bands(mel_power.shape[-2])
        power = mel_power.float().clamp_min(_AMIN)
        level = db_per_decade * torch.log10(power / power.amax(dim=(-2, -1), keepdim=True))
        return self.smooth_gain_db(self.static_gain_db(level))

    def __call__(self, mel_power: torch.Tensor, db_per_decade: float = 10.0) -> torch.Tensor:
        """Mel power `[batch, 1, bands, frames]` with its floor expanded down (same shape and dtype).

        Args:
            db_per_decade: dB per decade of the mel's values: 10 for a power mel, 20 for a magnitude mel
                (`Mel.db_per_decade`).
        """
        gain = self.gain_db(mel_power, db_per_decade)
        return (mel_power.float() * torch.pow(10.0, gain / db_per_decade)).to(mel_power.dtype)

    def check_bands(self, bands: int) -> None:
        """Raise `ValueError` unless the stage has one threshold per mel band of the mel it is applied to."""
        if bands != len(self.thresholds_db):
            raise ValueError(f"This floor stage has {len(self.thresholds_db)} band thresholds; the mel has {bands} "
                             "bands (recalibrate it for this checkpoint: python -m training.floor_stage CHECKPOINT).")

    # ---- files ---------------------------------------------------------------------------

    def to_dict(self) -> dict:
        data = asdict(self)
        data["thresholds_db"] = [round(float(value), 3) for value in self.thresholds_db]
        return {"version": 1, **data}

    @classmethod
    def from_dict(cls, data: dict) -> FloorStage:
        data = {key: value for key, value in data.items() if key != "version"}
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"Unknown floor stage field(s) {sorted(unknown)}; known: {sorted(known)}.")
        return cls(**data)

    def save(self, folder: str | Path) -> Path:
        """Write `FLOOR_FILE` into `folder`; returns its path."""
        path = Path(folder) / FLOOR_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path


def load_floor_stage(folder: str | Path | None) -> FloorStage | None:
    """The floor stage saved beside a checkpoint (`folder/floor_stage.json`); None when there is none.

    Raises:
        ValueError: the file exists but is not a floor stage (a broken calibration is never silently skipped).
    """
    path = Path(folder) / FLOOR_FILE if folder else None
    if path is None or not path.is_file():
        return None
    try:
        return FloorStage.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: not a floor stage ({error}).") from error
