"""Learn the beat activation network (`music.beat_activation`) from the cached per-frame features of labelled clips.

    python -m benchmarks.learn_beat_activation --cache /work/cache/estimators --extra-train seed1 seed2

Learns on the train split's cache (`CACHE/train*.npz`) plus the extra caches (`CACHE/PREFIX*.npz`: further corpus
builds' fresh clips, `benchmarks.estimator_features --exclude-groups`), reports on the valid split
(`CACHE/valid*.npz`), never reads test. Targets: the corpus clips start on a beat and their BPM label is exact,
so beat k sits at k * 60 / bpm seconds; the target is 1 at that frame and 0.5 at its neighbours (Böck et al.'s
widened targets). Random 2 s crops, binary cross-entropy over the clip's own frames, Adam. Writes the weights as
float32 (`--out`, default runs/beat_activation.npz; about 17 kB) for the numpy inference of
`music.beat_activation.beat_activation`. Reported per split: the loss and the share of clips whose activation
folds most sharply at the labelled tempo among it and its double, half, 3:2 and 2:3 (`ACTIVATION_RATIOS`).
"""
from __future__ import annotations

import argparse
import re
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from music import beat_activation as activation_module

CROP_FRAMES = 256
TARGET_NEIGHBOUR = 0.5
# The corpus's bars (`--downbeats`), and the subsets whose clips do not start on a downbeat (chorale excerpts).
BEATS_PER_BAR = 4
NO_DOWNBEAT_SUBSETS = ("classical",)


class BeatTCN(nn.Module):
    """The network `music.beat_activation.beat_activation` runs (same layer names): a 1x1 input convolution,
    `blocks` residual dilated 3-tap convolutions (dilation 2**b) with ELU, a 1x1 output convolution (logits)."""

    def __init__(self, channels: int = 24, blocks: int = 8, dropout: float = 0.1, outputs: int = 1) -> None:
        super().__init__()
        self.input = nn.Conv1d(activation_module.INPUT_CHANNELS, channels, 1)
        self.blocks = nn.ModuleList(nn.Conv1d(channels, channels, 3, dilation=2**b, padding=2**b)
                                    for b in range(blocks))
        self.output = nn.Conv1d(channels, outputs, 1)
        self.dropout = dropout

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits `[batch, outputs, frames]` of inputs `[batch, INPUT_CHANNELS, frames]`."""
        hidden = functional.elu(self.input(inputs))
        for block in self.blocks:
            hidden = hidden + functional.dropout(functional.elu(block(hidden)), self.dropout, self.training)
        return self.output(hidden)


def clip_arrays(data: dict[str, np.ndarray], index: int, downbeats: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(`music.beat_activation.clip_inputs` `[channels, frames]`, targets `[outputs, frames]`) of cached clip
    `index`: the beat target, and with `downbeats` the downbeat target (`downbeat_target`) as a second row."""
    frames = int(data["frame_count"][index])
    seconds = float(data["clip"][index][0])
    hop_in_s = seconds / (frames - 1)  # librosa's centred frames: one more than whole hops
    inputs = activation_module.clip_inputs(data["envelopes"][index][:, :frames], data["level_db"][index][:frames],
                                           data["chroma_frames"][index][:, :frames], hop_in_s)
    bpm = float(data["bpm"][index])
    rows = [beat_targets(frames, hop_in_s, bpm)]
    if downbeats:
        rows.append(downbeat_target(frames, hop_in_s, bpm, str(data["subset"][index])))
    return inputs, np.array(rows)


def downbeat_target(frames: int, hop_in_s: float, bpm: float, subset: str) -> np.ndarray:
    """The downbeat target: a beat target at a quarter of the tempo (the generated clips start on a downbeat and
    are in 4/4: the parts' patterns have `BEATS_PER_BAR` 4, the grooves hold no waltz, break clips start on a bar
    line); NaN (no target, left out of the loss) for the chorales, whose excerpts may start on any beat."""
    if subset in NO_DOWNBEAT_SUBSETS:
        return np.full(frames, np.nan, dtype=np.float32)
    return beat_targets(frames, hop_in_s, bpm / BEATS_PER_BAR)


def beat_targets(frames: int, hop_in_s: float, bpm: float, first_in_s: float = 0.0) -> np.ndarray:
    """The beat target of a clip of `frames` frames (one every `hop_in_s` seconds) whose beats fall every 60 / bpm
    seconds from `first_in_s` (0: the corpus clips start on a beat): 1 on each beat's frame, `TARGET_NEIGHBOUR`
    on its neighbours, 0 elsewhere."""
    target = np.zeros(frames, dtype=np.float32)
    beats = np.arange(first_in_s, (frames - 1) * hop_in_s, 60.0 / bpm) / hop_in_s
    for frame in np.round(beats).astype(int):
        for offset, value in ((-1, TARGET_NEIGHBOUR), (1, TARGET_NEIGHBOUR), (0, 1.0)):
            if 0 <= frame + offset < frames:
                target[frame + offset] = max(target[frame + offset], value)
    return target


def split_arrays(data: dict[str, np.ndarray], downbeats: bool = False,
                 ) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """Inputs, targets and cache indices of the labelled clips of one cache."""
    inputs, targets, indices = [], [], []
    for index in np.nonzero(data["bpm"] > 0)[0]:
        x, y = clip_arrays(data, int(index), downbeats)
        inputs.append(x)
        targets.append(y)
        indices.append(int(index))
    return inputs, targets, indices


def clip_fold(cache_file: str, file_name: str, folds: int) -> int:
    """The cross-fitting fold (0..folds-1) of a cached clip (`--fold`), from its corpus build (the cache file's
    name up to its first "-": train, seed1, ...) and its source clip's name: the stretched copies of a train clip
    (`benchmarks.stretch_train_loops`: cache files stretch-*, clip names ending -x0, -x1, ...) share its fold, so
    an out-of-fold activation never comes from a network that learned the same recording at another tempo."""
    build = cache_file.split("-")[0].removesuffix(".npz")
    build = "train" if build == "stretch" else build
    source = re.sub(r"-x\d+(\.\w+)$", r"\1", file_name)
    return zlib.crc32(f"{build}/{source}".encode()) % folds


def load_rows(cache: Path, prefixes: tuple[str, ...], fold: tuple[int, int] | None = None, downbeats: bool = False,
              ) -> tuple[list[np.ndarray], list[np.ndarray], list[float], list[str]]:
    """(inputs, targets, bpm, subset) of every labelled clip of the caches `cache/PREFIX*.npz`, one file at a time
    (parts may differ in frame length); with `fold` (i, n) all but the clips of fold i (`clip_fold`)."""
    inputs, targets, bpms, subsets = [], [], [], []
    for prefix in prefixes:
        files = sorted(cache.glob(f"{prefix}*.npz"))
        if not files:
            print(f"error: no feature cache {cache}/{prefix}*.npz (benchmarks.estimator_features)", file=sys.stderr)
            raise SystemExit(2)
        for file in files:
            with np.load(file) as part:
                data = {name: part[name] for name in ("envelopes", "level_db", "chroma_frames", "frame_count",
                                                      "bpm", "grid", "clip", "curves", "folds", "subset", "file_name")}
            if fold is not None:
                data["bpm"] = np.array([0.0 if clip_fold(file.name, str(name), fold[1]) == fold[0] else bpm
                                        for name, bpm in zip(data["file_name"], data["bpm"])])
            x, y, indices = split_arrays(data, downbeats)
            inputs += x
            targets += y
            bpms += [float(data["bpm"][index]) for index in indices]
            subsets += [str(data["subset"][index]) for index in indices]
    return inputs, targets, bpms, subsets


def fold_hits(activations: list[np.ndarray], targets: list[np.ndarray], bpms: list[float], subsets: list[str],
              hop_in_s: float = 0.008) -> dict[str, float]:
    """Share of clips (per subset and all) whose activation folds more sharply at the labelled tempo than at its
    double, 3:2 and 2:3 (its half ties by construction: a fold at two beats keeps both peaks), and the median
    ratio of the activation on the labelled beat frames to its clip mean ("on beats")."""
    hits: dict[str, list[bool]] = {}
    ratios = []
    for activation, target, bpm, subset in zip(activations, targets, bpms, subsets):
        contrast = activation_module.activation_features(activation, bpm, hop_in_s)[:len(
            activation_module.ACTIVATION_RATIOS)]
        hits.setdefault(subset, []).append(bool(contrast[0] > max(contrast[1], contrast[3], contrast[4])))
        ratios.append(float(activation[np.atleast_2d(target)[0] == 1].mean() / max(activation.mean(), 1e-9)))
    shares = {name: float(np.mean(values)) for name, values in sorted(hits.items())}
    return {**shares, "all": float(np.mean([hit for values in hits.values() for hit in values])),
            "on beats": float(np.median(ratios))}


def predict(model: BeatTCN, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The network's beat activation of each clip (whole clip, eval mode)."""
    model.eval()
    with torch.no_grad():
        return [torch.sigmoid(model(torch.from_numpy(x)[None]))[0, 0].numpy().astype(np.float64) for x in inputs]


def masked_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy per frame and output, averaged over the frames `mask` keeps and whose target is not
    NaN (a chorale's downbeat row)."""
    known = torch.isfinite(targets)
    weight = mask * known
    losses = functional.binary_cross_entropy_with_logits(logits, torch.where(known, targets, 0.0), weight=weight,
                                                         reduction="sum")
    return losses / weight.sum().clamp(min=1.0)


def mean_loss(model: BeatTCN, inputs: list[np.ndarray], targets: list[np.ndarray]) -> float:
    model.eval()
    targets = [np.atleast_2d(target) for target in targets]
    with torch.no_grad():
        losses = [masked_loss(model(torch.from_numpy(x)[None])[0], torch.from_numpy(y),
                              torch.ones(y.shape)).item() for x, y in zip(inputs, targets)]
    return float(np.mean(losses))


def crops(inputs: list[np.ndarray], targets: list[np.ndarray], batch: list[int],
          rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch of random `CROP_FRAMES` crops (zero-padded, with a mask of the clip's own frames)."""
    x = np.zeros((len(batch), activation_module.INPUT_CHANNELS, CROP_FRAMES), dtype=np.float32)
    y = np.zeros((len(batch), len(targets[0]), CROP_FRAMES), dtype=np.float32)
    mask = np.zeros((len(batch), 1, CROP_FRAMES), dtype=np.float32)
    for row, index in enumerate(batch):
        frames = inputs[index].shape[1]
        start = int(rng.integers(0, max(frames - CROP_FRAMES, 0) + 1))
        length = min(CROP_FRAMES, frames - start)
        x[row, :, :length] = inputs[index][:, start:start + length]
        y[row, :, :length] = targets[index][:, start:start + length]
        mask[row, :, :length] = 1.0
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(mask)


def train(inputs: list[np.ndarray], targets: list[np.ndarray], channels: int, blocks: int, epochs: int,
          seed: int, batch_size: int = 32, learning_rate: float = 2e-3, verbose: bool = True) -> BeatTCN:
    """A `BeatTCN` learned on the clips (one random crop per clip and epoch, cosine learning-rate decay)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    targets = [np.atleast_2d(target) for target in targets]  # [frames]: the beat alone
    model = BeatTCN(channels, blocks, outputs=len(targets[0]))
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    steps = epochs * ((len(inputs) + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=learning_rate, total_steps=steps)
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(inputs))
        total, started = 0.0, time.time()
        for first in range(0, len(order), batch_size):
            x, y, mask = crops(inputs, targets, list(order[first:first + batch_size]), rng)
            loss = masked_loss(model(x), y, mask)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(x)
        if verbose:
            print(f"epoch {epoch + 1}/{epochs}: loss {total / len(order):.4f} ({time.time() - started:.0f} s)",
                  flush=True)
    return model


def save(model: BeatTCN, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **{name: value.detach().numpy().astype(np.float32) for name, value in model.state_dict().items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--cache", type=Path, default=Path("runs/estimators"),
                        help="folder of the feature caches of benchmarks.estimator_features (default runs/estimators)")
    parser.add_argument("--extra-train", nargs="+", default=[], metavar="PREFIX",
                        help="also learn from the caches --cache/PREFIX*.npz (e.g. seed1 seed2: further corpus builds' "
                             "fresh clips); valid still reports; never test")
    parser.add_argument("--channels", type=int, default=24, help="channels of every hidden layer (default 24)")
    parser.add_argument("--blocks", type=int, default=8,
                        help="residual dilated blocks, dilations 1, 2, 4, ...: 8 reach about 4 s (default 8)")
    parser.add_argument("--epochs", type=int, default=12, help="passes over the training clips (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and crop seed (default 0)")
    parser.add_argument("--fold", type=str, default=None, metavar="I/N",
                        help="learn on all training clips but those of fold I of N (`clip_fold`), for out-of-fold "
                             "activations of the tempo network's training rows; default all")
    parser.add_argument("--downbeats", action="store_true",
                        help="a second output, the downbeat (every BEATS_PER_BAR beats from the clip's start; no "
                             "target for the chorales), for the tempo network's bar-level features")
    parser.add_argument("--out", type=Path, default=Path("runs/beat_activation.npz"),
                        help="weights file to write (default runs/beat_activation.npz)")
    args = parser.parse_args(argv)
    if min(args.channels, args.blocks, args.epochs) < 1:
        parser.error(f"--channels, --blocks and --epochs must be positive, got {args.channels}, {args.blocks}, "
                     f"{args.epochs}")
    fold = None
    if args.fold is not None:
        try:
            fold = tuple(int(value) for value in args.fold.split("/"))
        except ValueError:
            parser.error(f"--fold must be I/N with 0 <= I < N, got {args.fold!r}")
        if len(fold) != 2 or not 0 <= fold[0] < fold[1]:
            parser.error(f"--fold must be I/N with 0 <= I < N, got {args.fold!r}")
    x_train, y_train, bpm_train, subset_train = load_rows(args.cache, ("train", *args.extra_train), fold,
                                                                  args.downbeats)
    x_valid, y_valid, bpm_valid, subset_valid = load_rows(args.cache, ("valid",), downbeats=args.downbeats)
    print(f"{len(x_train)} training clips, {len(x_valid)} valid clips", flush=True)
    model = train(x_train, y_train, args.channels, args.blocks, args.epochs, args.seed)
    sample = np.random.default_rng(0).choice(len(x_train), size=min(400, len(x_train)), replace=False)
    for name, x, y, bpm, subset in (
            ("train (400 clips)", [x_train[i] for i in sample], [y_train[i] for i in sample],
             [bpm_train[i] for i in sample], [subset_train[i] for i in sample]),
            ("valid", x_valid, y_valid, bpm_valid, subset_valid)):
        hits = fold_hits(predict(model, x), y, bpm, subset)
        print(f"{name}: loss {mean_loss(model, x, y):.4f}; label folds sharper than its double, 3:2, 2:3: " +
              ", ".join(f"{key} {share:.3g}" for key, share in hits.items()), flush=True)
    save(model, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
