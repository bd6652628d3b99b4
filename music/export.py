"""Export for a DAW: the project's sample rate (soxr), mono or stereo, 16/24-bit WAV or FLAC, MP3
or OGG where this system's libsndfile can encode them.

Loops keep what makes them loops in any rate: each cycle is resampled circularly to exactly
`bars * beats_per_bar * 60 / bpm` seconds at the new rate, and WAVs carry `smpl` loop points,
the `acid` tempo and the settings (`music.loops.write_loop_wav`). FLAC, MP3 and OGG cannot hold
`smpl`/`acid` chunks; their title/comment tags carry the tempo, loop points and settings as JSON.

Typical use::

    settings = ExportSettings(sample_rate=48_000, channels=2, file_format="WAV 24-bit")
    path = export_loop("out/loop", loop, settings, {"prompt": prompt})   # out/loop.wav
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from music.audio import resample
from music.loops import Loop, append_wav_info, bar_length_in_samples, loop_facts, write_loop_wav

# Name shown to the user -> (libsndfile format, subtype, file suffix, WAV bits or None).
EXPORT_FORMATS: dict[str, tuple[str, str, str, int | None]] = {
    "WAV 16-bit": ("WAV", "PCM_16", ".wav", 16),
    "WAV 24-bit": ("WAV", "PCM_24", ".wav", 24),
    "FLAC 16-bit": ("FLAC", "PCM_16", ".flac", None),
    "FLAC 24-bit": ("FLAC", "PCM_24", ".flac", None),
    "MP3": ("MP3", "MPEG_LAYER_III", ".mp3", None),
    "OGG Vorbis": ("OGG", "VORBIS", ".ogg", None),
}
DEFAULT_FORMAT = "WAV 16-bit"
# Rates a DAW project runs at (Hz); None keeps the model's own rate.
EXPORT_SAMPLE_RATES = (44_100, 48_000)
SOFTWARE = "diffusion music studio (music/export.py)"


def available_formats() -> list[str]:
    """The `EXPORT_FORMATS` names this system's libsndfile can write (MP3 needs libsndfile >= 1.1)."""
    formats = sf.available_formats()
    return [name for name, (major, subtype, _, _) in EXPORT_FORMATS.items()
            if major in formats and subtype in sf.available_subtypes(major)]


@dataclass(frozen=True)
class ExportSettings:
    """How a file is written.

    Attributes:
        sample_rate: output rate in Hz (44100 or 48000; any rate from 8000 to 192000 is accepted), or
            None to keep the audio's own rate.
        channels: 1 (mono, channels averaged) or 2 (stereo: mono duplicated, stereo kept), or None to
            keep the audio's own channels.
        file_format: a key of `EXPORT_FORMATS`.
    """

    sample_rate: int | None = None
    channels: int | None = None
    file_format: str = DEFAULT_FORMAT

    def check(self) -> ExportSettings:
        """These settings, or ValueError naming the field, the value and what is allowed."""
        if self.sample_rate is not None and (
                not isinstance(self.sample_rate, (int, np.integer)) or not 8_000 <= self.sample_rate <= 192_000):
            raise ValueError(f"Export sample rate must be a whole number of Hz from 8000 to 192000 (e.g. 44100 or "
                             f"48000), got {self.sample_rate!r}.")
        if self.channels not in (None, 1, 2):
            raise ValueError(f"Export channels must be 1 (mono) or 2 (stereo), got {self.channels!r}.")
        if self.file_format not in EXPORT_FORMATS:
            raise ValueError(f"Export format must be one of {', '.join(EXPORT_FORMATS)}, got {self.file_format!r}.")
        if self.file_format not in available_formats():
            raise ValueError(f"This system's libsndfile cannot write {self.file_format}; choose one of "
                             f"{', '.join(available_formats())}.")
        return self

    @property
    def suffix(self) -> str:
        return EXPORT_FORMATS[self.file_format][2]

    @property
    def max_bytes_per_sample(self) -> int:
        """Bytes one sample of one channel takes at most: 3 for 24-bit, 2 for 16-bit and the lossy
        formats (MP3 and OGG take far less; FLAC at most about its PCM size)."""
        return 3 if EXPORT_FORMATS[self.file_format][1] == "PCM_24" else 2


def as_channels_first(audio: np.ndarray) -> np.ndarray:
    """float32 `[channels, samples]` from `[samples]` or `[channels, samples]`."""
    audio = np.asarray(audio, dtype=np.float32)
    return audio[None] if audio.ndim == 1 else audio


def match_channels(audio: np.ndarray, channels: int | None) -> np.ndarray:
    """`[channels, samples]` audio with `channels` rows: mono duplicated, more channels averaged to
    mono (None keeps them)."""
    audio = as_channels_first(audio)
    if channels is None or audio.shape[0] == channels:
        return audio
    mono = audio.mean(axis=0, keepdims=True)
    return np.repeat(mono, channels, axis=0)


def resample_cycle(cycle: np.ndarray, from_rate: int, to_rate: int, length: int) -> np.ndarray:
    """One loop cycle (`[samples]` or `[channels, samples]`) resampled to exactly `length` samples at
    `to_rate` Hz, circularly: three copies are resampled and the middle one kept, so the filter sees
    the loop's own continuation on both sides and the wrap stays seamless."""
    cycle = np.asarray(cycle, dtype=np.float32)
    three = resample(np.concatenate([cycle, cycle, cycle], axis=-1), from_rate, to_rate)
    start = round(cycle.shape[-1] * to_rate / from_rate)
    middle = three[..., start : start + length]
    if middle.shape[-1] < length:  # rounding at the very end: take the missing samples circularly
        middle = np.concatenate([middle, three[..., : length - middle.shape[-1]]], axis=-1)
    return middle


def convert_loop(loop: Loop, settings: ExportSettings) -> Loop:
    """`loop` at the settings' rate and channels, each cycle exactly its bars at the new rate."""
    settings.check()
    rate = settings.sample_rate or loop.sample_rate
    cycle = as_channels_first(loop.audio)[:, : loop.loop_length]
    if rate != loop.sample_rate:
        length = bar_length_in_samples(loop.bars, loop.beats_per_bar, loop.bpm, rate)
        cycle = resample_cycle(cycle, loop.sample_rate, rate, length)
    cycle = match_channels(cycle, settings.channels)
    peak = float(np.max(np.abs(cycle)))
    if peak > 1.0:  # resampling can overshoot a full-scale peak slightly
        cycle = cycle / peak
    audio = np.tile(cycle, (1, loop.repeats))
    audio = audio[0] if audio.shape[0] == 1 and np.asarray(loop.audio).ndim == 1 else audio
    return replace(loop, audio=audio, sample_rate=rate, loop_start=0, loop_end=audio.shape[-1],
                   source_start=round(loop.source_start * rate / loop.sample_rate))


def _write_tagged(path: Path, audio: np.ndarray, sample_rate: int, settings: ExportSettings,
                  metadata: dict[str, str]) -> Path:
    """Write with libsndfile, the settings as JSON in the comment tag (title and software tags too) where
    the format has tags."""
    major, subtype, _, _ = EXPORT_FORMATS[settings.file_format]
    frames = np.clip(as_channels_first(audio).T, -1.0, 1.0)
    tags = dict(metadata)
    title = str(tags.pop("title", "")) or path.stem
    software = str(tags.pop("software", SOFTWARE))
    with sf.SoundFile(path, "w", samplerate=int(sample_rate), channels=frames.shape[1], format=major,
                      subtype=subtype) as file:
        try:  # tags go in before the audio (FLAC, OGG); a format without string tags gets none
            if major != "WAV":  # libsndfile drops WAV tags past about 2 kB: a WAV gets its own INFO chunk
                file.title, file.software, file.comment = title, software, json.dumps(tags, ensure_ascii=True)
        except sf.LibsndfileError:
            pass
        file.write(frames)
    if major == "WAV":
        append_wav_info(path, {"title": title, "software": software, **tags})
    return path


def export_loop(path: str | Path, loop: Loop, settings: ExportSettings | None = None,
                metadata: dict[str, str] | None = None) -> Path:
    """Write `loop` at `settings` to `path` with the format's suffix (replacing any); returns the path.

    WAV: `smpl` loop points, `acid` tempo and the metadata in LIST/INFO. Other formats: the loop facts
    (tempo, bars, loop start/end in samples) and the metadata as JSON in the comment tag.
    """
    settings = (settings or ExportSettings()).check()
    converted = convert_loop(loop, settings)
    path = Path(path).with_suffix(settings.suffix)
    metadata = {key: str(value) for key, value in (metadata or {}).items()}
    metadata.update(export_sample_rate=str(converted.sample_rate), export_format=settings.file_format)
    bits = EXPORT_FORMATS[settings.file_format][3]
    if bits is not None:
        return write_loop_wav(path, converted, metadata, bits_per_sample=bits)
    facts = {**metadata, **loop_facts(converted), "loop_start": str(converted.loop_start),
             "loop_end": str(converted.loop_end)}
    return _write_tagged(path, converted.audio, converted.sample_rate, settings, facts)


def export_audio(path: str | Path, audio: np.ndarray, sample_rate: int, settings: ExportSettings | None = None,
                 metadata: dict[str, str] | None = None) -> Path:
    """Write a plain clip (`[samples]` or `[channels, samples]` at `sample_rate` Hz) at `settings` to
    `path` with the format's suffix; the metadata as JSON in the comment tag. Returns the path."""
    settings = (settings or ExportSettings()).check()
    rate = settings.sample_rate or int(sample_rate)
    audio = match_channels(resample(as_channels_first(audio), int(sample_rate), rate), settings.channels)
    metadata = {key: str(value) for key, value in (metadata or {}).items()}
    metadata.update(export_sample_rate=str(rate), export_format=settings.file_format)
    return _write_tagged(Path(path).with_suffix(settings.suffix), audio, rate, settings, metadata)
