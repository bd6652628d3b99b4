"""Tempo adherence: does audio keep the tempo (BPM) its prompt asked for?

The one module for tempo checks: the corpus fidelity check (`scripts/corpus/fidelity.py`) and the
evaluation of generated clips both use `estimate_bpm` and `bpm_matches` from here.

- `estimate_bpm`: global tempo estimate in BPM, delegated to `music.tempo` (the project's one tempo
  estimator: onset envelope with a low band for kicks, librosa's tempogram, then a beat grid fitted
  to the attacks). `bpm_matches`, `matching_factor` and `bpm_from_prompt` are re-exported from there.
- `bpm_matches`: within a relative tolerance of the asked BPM, its half or its double (tempo
  octave errors are the estimator's commonest mistake and are not counted against the audio).
- `bpm_from_prompt`: the BPM a caption / prompt asks for ("funk band in F minor, 107 BPM: ...").
- `tempo_adherence`: over a folder with `metadata.jsonl`, the share of clips whose estimated tempo
  matches their prompt's BPM, a bootstrap 95% interval, and a chance baseline (each clip's estimate
  against another clip's asked BPM) so "within 8%" can be read against what happens by accident.

Command line: `python -m evaluation tempo FOLDER`.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from music.tempo import (  # noqa: F401  (re-exported: the project's one tempo module)
    DEFAULT_TOLERANCE,
    OCTAVE_FACTORS,
    bpm_from_prompt,
    bpm_matches,
    matching_factor,
    onset_hop_samples,
)
from music.tempo import estimate_bpm as _estimate_bpm

ADHERENCE_TOLERANCE = 0.08  # relative; generated audio (`tempo_adherence` default)
ANALYSIS_RATE_HZ = 16_000  # clips are resampled to this rate so the hop is always 8 ms
ONSET_HOP_SAMPLES = onset_hop_samples(ANALYSIS_RATE_HZ)  # 128 = 8 ms at 16 kHz
CHANCE_PERMUTATIONS = 20
METADATA_FILE = "metadata.jsonl"


def estimate_bpm(audio: np.ndarray, sample_rate: int, hop_length: int | None = None) -> float:
    """Global tempo estimate in BPM of a mono waveform at `sample_rate` Hz: `music.tempo.estimate_bpm`
    (the one estimator the loops, the app and the benchmarks use), within 55-200 BPM.

    `hop_length` is accepted for older callers and ignored: the estimator picks its own ~6-8 ms hop.

    Raises:
        ValueError: silent, non-finite or shorter than 2 s audio.
    """
    del hop_length
    return _estimate_bpm(np.asarray(audio, dtype=np.float32), int(sample_rate))


def read_prompts(path: str | Path) -> dict[str, str]:
    """File name (relative to the file's folder, POSIX) -> prompt, from a `metadata.jsonl`
    (rows with `file_name` and `text`). The rules of `evaluation.clap_score.read_captions`
    without importing torch (seconds): bad JSON, missing keys and two different prompts for one
    file are errors (ValueError naming the line); an empty prompt is kept (it names no BPM)."""
    path = Path(path)
    prompts: dict[str, str] = {}
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{line_number}: not valid JSON ({error})") from error
        if not isinstance(row, dict) or "file_name" not in row or "text" not in row:
            raise ValueError(f"{path}:{line_number}: needs keys 'file_name' and 'text'")
        name, text = Path(str(row["file_name"])).as_posix(), str(row["text"]).strip()
        if prompts.get(name, text) != text:
            raise ValueError(f"{path}: {name} has two different prompts")
        prompts[name] = text
    return prompts


def rows_matching(path: str | Path, where: dict[str, str]) -> set[str]:
    """File names of the `metadata.jsonl` rows whose fields (or their `reference` row's) equal `where`."""

    def value(row: dict, key: str) -> object:
        reference = row.get("reference")
        return row[key] if key in row else (reference or {}).get(key) if isinstance(reference, dict) else None

    selected = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if all(str(value(row, key)) == wanted for key, wanted in where.items()):
                selected.add(Path(str(row["file_name"])).as_posix())
    return selected


@dataclass
class TempoAdherence:
    """Result of `tempo_adherence`. Shares are fractions in [0, 1]; tempos are in BPM.

    `share_within`: clips whose estimated tempo is within `tolerance` of the asked BPM, its half
    or its double, over `clips_checked`; `ci_low`/`ci_high`: its percentile bootstrap interval
    (`confidence`, `n_bootstrap` resamples of the clips, `seed`); `chance_share`: the same share
    when each clip's estimate is compared with another clip's asked BPM (mean over
    `chance_permutations` seeded derangements); `octave_errors`: matches only at half/double.
    """

    folder: str
    clips_checked: int
    clips_skipped: int
    share_within: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float
    n_bootstrap: int
    seed: int
    tolerance: float
    octave_factors: list[float]
    chance_share: float | None
    chance_permutations: int
    octave_errors: int
    analysis_rate_hz: int
    hop_length_samples: int
    where: dict = field(default_factory=dict)
    skipped_files: list[str] = field(default_factory=list)
    bad_files: list[dict] = field(default_factory=list)
    per_clip: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """Short human-readable summary (a few lines)."""

        def percent(share: float | None) -> str:
            return "n/a" if share is None else f"{100 * share:.1f}%"

        interval = (
            ""
            if self.ci_low is None
            else f" (95% CI {percent(self.ci_low)} - {percent(self.ci_high)})"
        )
        checked = (
            f"clips checked: {self.clips_checked}, skipped (no BPM in prompt): {self.clips_skipped}"
        )
        if self.bad_files:
            checked += f", unreadable/silent: {len(self.bad_files)}"
        lines = [
            (
                f"tempo adherence: {percent(self.share_within)}{interval} of "
                f"{self.clips_checked} clips within {100 * self.tolerance:g}% of the asked BPM "
                f"(half/double allowed; {self.octave_errors} at half/double)"
            ),
            (
                f"chance baseline: {percent(self.chance_share)} (estimates against other "
                f"clips' asked BPM, {self.chance_permutations} permutations)"
            ),
            checked,
        ]
        return "\n".join(lines)


def _derangement(rng: np.random.Generator, n: int) -> np.ndarray:
    """A uniformly random permutation of range(n) without fixed points (n >= 2)."""
    while True:  # a random permutation is a derangement with probability ~1/e
        permutation = rng.permutation(n)
        if not np.any(permutation == np.arange(n)):
            return permutation


def chance_share(
    estimated_bpm: np.ndarray,
    asked_bpm: np.ndarray,
    tolerance: float,
    permutations: int = CHANCE_PERMUTATIONS,
    seed: int = 0,
) -> float | None:
    """Share of matches when clip i's estimate (BPM) is compared with the asked BPM of clip
    sigma(i) != i, averaged over `permutations` seeded random derangements sigma. None for
    fewer than 2 clips. Clips that share an asked tempo still match by this chance."""
    n = len(estimated_bpm)
    if n < 2 or permutations < 1:
        return None
    rng = np.random.default_rng(seed)
    shares = []
    for _ in range(permutations):
        sigma = _derangement(rng, n)
        shares.append(
            np.mean(
                [
                    bpm_matches(float(estimated_bpm[i]), float(asked_bpm[sigma[i]]), tolerance)
                    for i in range(n)
                ]
            )
        )
    return float(np.mean(shares))


def tempo_adherence(
    folder: str | Path,
    tolerance: float = ADHERENCE_TOLERANCE,
    n_bootstrap: int = 1000,
    seed: int = 0,
    progress: bool = True,
    on_error: str = "raise",
    confidence: float = 0.95,
    chance_permutations: int = CHANCE_PERMUTATIONS,
    where: dict[str, str] | None = None,
) -> TempoAdherence:
    """How often clips in `folder` keep the tempo their prompt asks for.

    Args:
        folder: audio folder with a `metadata.jsonl` (rows with `file_name`, relative to the
            folder, and `text`, the prompt / caption).
        tolerance: relative tolerance (0.08 = within 8% of the asked BPM, its half or double).
        n_bootstrap: bootstrap resamples of the checked clips for the interval.
        seed: seeds the bootstrap and the chance-baseline permutations.
        progress: show a progress bar while estimating tempi.
        on_error: "raise" stops at an unreadable or silent clip; "skip" warns, leaves it out
            and lists it in `bad_files`.
        confidence: interval level (0.95 = 95%).
        chance_permutations: derangements averaged for the chance baseline.
        where: keep only clips whose metadata row has these values (compared as text), looked up
            in the row itself or in its `reference` row (the reference clip whose caption prompted
            a generated clip, see `evaluation.generate`); e.g. `{"subset": "drums"}`.

    Clips whose prompt names no BPM are counted in `clips_skipped`. Every clip is mixed to mono
    and resampled to `ANALYSIS_RATE_HZ` (16 kHz) so the onset hop is 8 ms whatever the file rate.
    A prompt naming a BPM whose audio file is missing is an error (FileNotFoundError).
    """
    from tqdm.auto import tqdm

    from evaluation.audio_io import AudioLoadError, load_clip
    from evaluation.bootstrap import bootstrap_ci

    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if tolerance <= 0:
        raise ValueError(f"tolerance must be positive, got {tolerance}")
    folder = Path(folder)
    caption_file = folder / METADATA_FILE
    if not caption_file.is_file():
        raise FileNotFoundError(f"no {METADATA_FILE} in {folder}")
    captions = read_prompts(caption_file)
    if where:
        selected = rows_matching(caption_file, where)
        captions = {name: text for name, text in captions.items() if name in selected}
        if not captions:
            raise ValueError(f"no row of {caption_file} matches {where}")
    asked_by_file = {name: bpm_from_prompt(text) for name, text in sorted(captions.items())}
    skipped = [name for name, bpm in asked_by_file.items() if bpm is None]
    wanted = {name: bpm for name, bpm in asked_by_file.items() if bpm is not None}
    missing = [name for name in wanted if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} file(s) named in {caption_file} are missing, e.g. {missing[:5]}"
        )

    per_clip, bad_files, estimates = [], [], []
    for name, asked in tqdm(wanted.items(), desc="tempo", disable=not progress):
        try:
            audio, rate_hz = load_clip(folder / name, ANALYSIS_RATE_HZ)
            estimated = estimate_bpm(audio, rate_hz)
        except (AudioLoadError, ValueError) as error:  # ValueError: too short or silent to time
            if on_error == "raise":
                raise
            warnings.warn(f"skipping {name}: {error}", stacklevel=2)
            bad_files.append({"file": name, "reason": str(error)})
            continue
        factor = matching_factor(estimated, asked, tolerance)
        estimates.append(estimated)
        per_clip.append(
            {
                "file": name,
                "asked_bpm": asked,
                "estimated_bpm": round(estimated, 2),
                "match": factor is not None,
                "octave_factor": factor,
                "seconds": round(len(audio) / rate_hz, 3),
            }
        )

    matches = np.array([clip["match"] for clip in per_clip], dtype=float)
    share = float(matches.mean()) if len(matches) else None
    ci_low = ci_high = None
    if len(matches) >= 2 and n_bootstrap > 0:
        interval = bootstrap_ci(
            lambda index: float(matches[index].mean()),
            len(matches),
            n_bootstrap,
            confidence,
            seed,
            method="percentile",
        )
        ci_low, ci_high = interval.ci_low, interval.ci_high
    estimated_bpm = np.array(estimates)
    asked_bpm = np.array([clip["asked_bpm"] for clip in per_clip])
    return TempoAdherence(
        folder=str(folder),
        clips_checked=len(per_clip),
        clips_skipped=len(skipped),
        share_within=share,
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=confidence,
        n_bootstrap=n_bootstrap,
        seed=seed,
        tolerance=tolerance,
        octave_factors=list(OCTAVE_FACTORS),
        chance_share=chance_share(estimated_bpm, asked_bpm, tolerance, chance_permutations, seed),
        chance_permutations=chance_permutations,
        octave_errors=sum(clip["match"] and clip["octave_factor"] != 1.0 for clip in per_clip),
        analysis_rate_hz=ANALYSIS_RATE_HZ,
        hop_length_samples=ONSET_HOP_SAMPLES,
        where=dict(where or {}),
        skipped_files=skipped,
        bad_files=bad_files,
        per_clip=per_clip,
    )
