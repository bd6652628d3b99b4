"""Build a training data pack from a corpus folder: every train/valid clip stretched to one reference tempo,
as 8-bit mel spectrograms with pooled caption embeddings and key labels, in one compressed file (see
`training/pack.py`). Each pitched train clip (one with a key label) is also packed pitch-shifted into
`--key-shifts` other keys, its caption and key rewritten (`training/key_augment.py`).

    python -m scripts.build_pack data/corpus --out data/packs/corpus.npz
    python -m scripts.build_pack data/corpus --out data/packs/chords.npz --only part=chords,arpeggio

The pack is what `python -m training.train_pack` reads, on CPU or GPU, with no audio or text encoder.
"""
from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from models.key_embedding import NO_KEY, key_index
from models.mel import Mel
from models.text_encoder import DEFAULT_TEXT_ENCODER, encode_text, load_text_encoder, pool_text
from models.vocoder import HIFIGAN_MEL
from music.audio import load_audio
from music.audiofolder import file_sha256, metadata_file
from music.key import key_from_prompt, parse_key
from music.stretch import pitch_shift, samples_at_tempo, stretcher_name, time_stretch
from training.data import DataError, read_metadata
from training.key_augment import choose_shifts, key_variant
from training.pack import Pack, quantize, reference_bpm, save_pack

SPLITS = ("train", "valid")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("corpus", type=Path, help="corpus folder with train/ and valid/ (each with metadata.jsonl)")
    parser.add_argument("--out", type=Path, default=Path("data/packs/corpus.npz"), help="pack file to write")
    parser.add_argument("--sample-rate", type=int, default=16000, help="sample rate of the mel analysis in Hz")
    parser.add_argument("--n-fft", type=int, default=1024, help="STFT size in samples")
    parser.add_argument("--hop-length", type=int, default=256, help="STFT hop in samples")
    parser.add_argument("--mel-bands", type=int, default=64, help="mel bands (image rows)")
    parser.add_argument("--top-db", type=int, default=80, help="dynamic range kept below each clip's peak, in dB")
    parser.add_argument("--f-max", type=float, default=None, help="highest mel band edge in Hz (default: Nyquist)")
    parser.add_argument("--mel-power", type=float, choices=(1.0, 2.0), default=2.0,
                        help="2: power mel (Griffin-Lim models); 1: magnitude mel (neural vocoders)")
    parser.add_argument("--vocoder", choices=("none", "hifigan"), default="none",
                        help="hifigan: the mel HiFi-GAN's universal vocoder takes (22.05 kHz, n_fft 1024, hop 256, "
                             "80 magnitude bands to 8 kHz; overrides --sample-rate, --n-fft, --hop-length, "
                             "--mel-bands), for the preset bars-hifigan; none: the Griffin-Lim power mel")
    parser.add_argument("--frames-per-beat", type=int, default=None,
                        help="STFT frames in one beat at the reference tempo "
                             "(sets it; default 32 -> 117.19 BPM at 16 kHz, hop 256; with --vocoder hifigan 44 -> "
                             "117.45 BPM at 22.05 kHz, hop 256)")
    parser.add_argument("--beats-per-bar", type=int, default=4, help="beats in a bar")
    parser.add_argument("--max-bars", type=float, default=3.0,
                        help="keep at most this many bars of each clip (0 = all), to bound the pack's size")
    parser.add_argument("--bpm-column", default="bpm", help="metadata field holding each clip's tempo in BPM")
    parser.add_argument("--caption-column", default="text", help="metadata field holding each clip's caption")
    parser.add_argument("--text-encoder", default=DEFAULT_TEXT_ENCODER,
                        help="text encoder whose pooled embedding of each caption is stored ('' = none)")
    parser.add_argument("--max-clips", type=int, default=0, help="use only the first N clips of each split (0 = all)")
    parser.add_argument("--only", action="append", default=[], metavar="FIELD=VALUE[,VALUE]",
                        help="keep only clips whose metadata FIELD is one of the values, e.g. part=chords,arpeggio "
                             "or subset=melodic (repeatable: all must hold)")
    augment = parser.add_argument_group("key augmentation (train clips with a key label; drums have none)")
    augment.add_argument("--key-shifts", type=int, default=0,
                         help="also pack each pitched train clip pitch-shifted (Rubber Band) into this many other "
                              "keys, caption key words, chord symbols and key label rewritten (default 0 = off: "
                              "3 makes the full corpus pack about 100 MiB, over a GPU session's 64 MiB carry)")
    augment.add_argument("--max-key-shift", type=int, default=6,
                         help="largest shift in semitones (shifts are drawn from -N..+min(N, 5), never 0)")
    augment.add_argument("--key-seed", type=int, default=0, help="seed of the shifts drawn for each clip")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for stretching and analysis")
    return parser


def read_rows(corpus: Path, split: str, bpm_column: str, caption_column: str) -> list[dict]:
    """Metadata rows of one split (read by the trainers' own `read_metadata`), with absolute paths."""
    folder = corpus / split
    if metadata_file(folder) is None:
        raise FileNotFoundError(f"{folder}/metadata.jsonl is missing: the pack needs one per split.")
    root = corpus.resolve()
    return [{"path": str(path), "file_name": path.relative_to(root).as_posix(), "split": split,
             "subset": str(row.get("subset") or ""), "bpm": row.get(bpm_column),
             "caption": str(row.get(caption_column) or ""), "key": str(row.get("key") or ""),
             "chords": [str(chord) for chord in row.get("chords") or []], "shift": 0, "metadata": row}
            for path, row in read_metadata(folder).items()]


def parse_filters(filters: list[str]) -> dict[str, set[str]]:
    """`["part=chords,arpeggio"]` -> `{"part": {"chords", "arpeggio"}}`.

    Raises:
        ValueError: a filter without `=` or without values.
    """
    parsed = {}
    for text in filters:
        field_name, _, values = text.partition("=")
        kept = {value.strip() for value in values.split(",") if value.strip()}
        if not field_name.strip() or not kept:
            raise ValueError(f"--only takes FIELD=VALUE[,VALUE], got {text!r}.")
        parsed[field_name.strip()] = kept
    return parsed


def row_key_class(row: dict) -> int:
    """Key class of a row (`models.key_embedding.key_index`): its key label, else the key its caption names,
    else `NO_KEY`."""
    try:
        key = parse_key(row["key"]) if row["key"] else key_from_prompt(row["caption"])
    except ValueError:
        key = key_from_prompt(row["caption"])
    return NO_KEY if key is None else key_index(key)


def key_augmented(rows: list[dict], shifts: int, max_shift: int, seed: int) -> list[dict]:
    """Rows of the pitch-shifted copies of every train row with a key label (`shifts` each)."""
    copies = []
    for row in rows:
        if row["split"] != "train" or row_key_class(row) == NO_KEY or not row["key"]:
            continue
        for semitones in choose_shifts(row["file_name"], shifts, seed, max_shift):
            variant = key_variant(row["caption"], row["key"], semitones, row["chords"])
            copies.append(dict(row, caption=variant.caption, key=variant.key, chords=list(variant.chords),
                               shift=semitones))
    return copies


def analyse(job: tuple[str, float, dict, float, int, int]) -> tuple[np.ndarray, float, str]:
    """One clip: read, mix to mono, resample, pitch-shift by `semitones` (key augmentation; 0: none), stretch
    to the reference tempo, mel dB re peak as uint8.

    Returns the `[y, frames]` uint8 mel, the stretched length in seconds and the file's SHA-256.
    """
    path, bpm, mel_settings, target_bpm, max_frames, semitones = job
    torch.set_num_threads(1)
    mel = Mel(**mel_settings)
    audio = load_audio(path, mel.sample_rate)
    if semitones:
        audio = pitch_shift(audio, mel.sample_rate, semitones)
    stretched = time_stretch(audio, mel.sample_rate, samples_at_tempo(len(audio), bpm, target_bpm))
    hop = mel.config.hop_length
    frames = mel.frames_for_samples(len(stretched))
    padded = np.zeros(frames * hop - 1, dtype=np.float32)
    padded[: len(stretched)] = stretched[: len(padded)]
    power = mel.audio_to_mel_power(torch.from_numpy(padded)[None])[0].numpy()
    db = mel.db_per_decade * np.log10(np.maximum(power, 1e-10))
    db -= db.max()
    kept = db[:, :max_frames] if max_frames else db
    return quantize(kept, mel.config.top_db), len(stretched) / mel.sample_rate, file_sha256(path)


def caption_embeddings(captions: list[str], encoder: str) -> tuple[np.ndarray, np.ndarray]:
    """Pooled, normalised text embeddings `[len(captions), dim]` float16 (one per caption) and that of ""."""
    tokenizer, model = load_text_encoder(encoder)
    unique = sorted(set(captions) | {""})
    rows = {}
    for start in tqdm(range(0, len(unique), 128), desc="text embeddings", unit="batch"):
        chunk = unique[start:start + 128]
        hidden, mask = encode_text(tokenizer, model, chunk, 64)
        pooled, _ = pool_text(hidden, mask)
        rows.update(zip(chunk, pooled[:, 0].float().numpy()))
    return np.stack([rows[caption] for caption in captions]).astype(np.float16), rows[""].astype(np.float16)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rows = []
        filters = parse_filters(args.only)
        for split in SPLITS:
            split_rows = read_rows(args.corpus, split, args.bpm_column, args.caption_column)
            split_rows = [row for row in split_rows
                          if all(str(row["metadata"].get(name, "")) in values for name, values in filters.items())]
            rows += split_rows[: args.max_clips] if args.max_clips else split_rows
        if args.key_shifts:
            rows += key_augmented(rows, args.key_shifts, args.max_key_shift, args.key_seed)
    except (FileNotFoundError, ValueError, DataError) as error:
        print(f"build_pack: {error}", file=sys.stderr)
        return 2
    no_tempo = [row["file_name"] for row in rows if not row["bpm"] or float(row["bpm"]) <= 0]
    rows = [row for row in rows if row["bpm"] and float(row["bpm"]) > 0]
    if not rows:
        print(f"build_pack: no clip in {args.corpus} has a tempo in '{args.bpm_column}'.", file=sys.stderr)
        return 2
    if args.frames_per_beat is None:
        args.frames_per_beat = 44 if args.vocoder == "hifigan" else 32
    mel_settings = {"x_res": args.frames_per_beat * args.beats_per_bar, "y_res": args.mel_bands,
                    "sample_rate": args.sample_rate, "n_fft": args.n_fft, "hop_length": args.hop_length,
                    "top_db": args.top_db, "n_iter": 32, "f_min": 0.0, "f_max": args.f_max, "power": args.mel_power}
    if args.vocoder == "hifigan":
        mel_settings.update(HIFIGAN_MEL)
        args.sample_rate, args.hop_length = HIFIGAN_MEL["sample_rate"], HIFIGAN_MEL["hop_length"]
    try:
        Mel(**mel_settings)
    except ValueError as error:
        print(f"build_pack: {error}", file=sys.stderr)
        return 2
    target = reference_bpm(args.sample_rate, args.hop_length, args.frames_per_beat)
    max_frames = round(args.max_bars * args.frames_per_beat * args.beats_per_bar) if args.max_bars else 0
    jobs = [(row["path"], float(row["bpm"]), mel_settings, target, max_frames, row["shift"]) for row in rows]
    shifted = sum(1 for row in rows if row["shift"])
    print(f"{len(rows)} clips ({shifted} of them key-shifted copies) -> {target:.4f} BPM with {stretcher_name()}; "
          f"{len(no_tempo)} without a tempo skipped")
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(tqdm(pool.map(analyse, jobs, chunksize=8), total=len(jobs), desc="stretch + mel", unit="clip"))
    mels = [mel for mel, _, _ in results]
    captions = [row["caption"] for row in rows]
    embeddings, empty = (caption_embeddings(captions, args.text_encoder) if args.text_encoder
                         else (np.zeros((len(rows), 0), dtype=np.float16), np.zeros(0, dtype=np.float16)))
    pack = Pack(
        mel=np.concatenate(mels, axis=1),
        offsets=np.concatenate([[0], np.cumsum([mel.shape[1] for mel in mels])]).astype(np.int64),
        split=np.array([row["split"] for row in rows]), subset=np.array([row["subset"] for row in rows]),
        file_name=np.array([row["file_name"] for row in rows]), sha256=np.array([digest for _, _, digest in results]),
        caption=np.array(captions), bpm=np.array([float(row["bpm"]) for row in rows], dtype=np.float32),
        seconds=np.array([seconds for _, seconds, _ in results], dtype=np.float32), text_embeddings=embeddings,
        empty_text_embedding=empty, key=np.array([row_key_class(row) for row in rows], dtype=np.int8),
        shift=np.array([row["shift"] for row in rows], dtype=np.int8),
        info={"mel": mel_settings, "reference_bpm": target, "frames_per_beat": args.frames_per_beat,
                  "beats_per_bar": args.beats_per_bar, "max_bars": args.max_bars,
                  "text_encoder": args.text_encoder or None,
                  "text_pooling": "mean" if args.text_encoder else None, "stretcher": stretcher_name(),
                  "corpus": str(args.corpus), "skipped_without_tempo": no_tempo, "only": args.only,
                  "key_shifts": args.key_shifts, "max_key_shift": args.max_key_shift, "key_seed": args.key_seed},
    )
    path = save_pack(args.out, pack)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB): {len(pack)} clips, {pack.mel.shape[1]} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
