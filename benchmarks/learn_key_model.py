"""Learn the key estimator's model (`music/key_model.npz`) from the labelled pitched corpus clips.

    OMP_NUM_THREADS=1 python -m benchmarks.key_features train --part 0/2   # feature caches, once (a few
    OMP_NUM_THREADS=1 python -m benchmarks.key_features train --part 1/2   # minutes a split):
    OMP_NUM_THREADS=1 python -m benchmarks.key_features valid              # runs/estimators/key-*.npz
    python -m scripts.chorale_key_check train valid test                   # chorale excerpt labels
    python -m scripts.build_corpus --out runs/key_extra --subset melodic --num-clips 4000 --seed 7 --skip-fidelity
    OMP_NUM_THREADS=1 python -m benchmarks.key_features train --corpus runs/key_extra \
        --out runs/estimators/key-train-extra-seed7.npz                    # more lone parts to learn from
    python -m benchmarks.learn_estimators key --hidden 64                  # writes music/key_model.npz

The model scores each of the 24 candidate keys with one network shared by the candidates: the input is
`music.key.candidate_features` (the registers of `register_chroma` and the per-eighth triad posteriors
of `chord_posteriors`, rotated to the candidate tonic), a linear score per mode plus one ReLU hidden layer
(dropout, weight decay), trained by AdamW on the softmax over the 24 keys. Since the features are
rotated to each candidate, every transposition of a training clip is seen at once (the model is
transposition-invariant in the pitch classes by construction). The hidden size and the number of epochs are
chosen on the valid split (the model learned on train only, an ensemble of `MEMBERS` seeds), then the
ensemble is refitted on train and valid together; never the test split. The clarity threshold of
`music.key.MIN_CLARITY` is read off the valid split's table printed here (model learned on train only).
About a minute a member on one thread for the corpus's train split alone.

Chorale clips learn their excerpt's key (`benchmarks/results/chorale_key_labels.json`), not the whole chorale's.
Every `key-train*.npz` of the cache folder is learned from: the shipped model also learned from the train split
of a second build of the melodic subset (seed 7: 3,200 generated bass lines, arpeggios, chords and melodies; no
piece shared with the corpus, whose valid and test splits stay the judges), since the corpus's 240 train clips
of each lone part were too few for their progressions (valid 85.8% -> 86.8% at 32 hidden units, 88.6% at 64).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from benchmarks.bench_key_estimator import load_excerpt_labels
from music import key as key_module

MEMBERS = 3
HIDDEN = (32, 64)
EPOCHS = (50, 100)
DROPOUT = 0.3
WEIGHT_DECAY = 0.05
LEARNING_RATE = 3e-3
BATCH = 128
CLARITY_STEPS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)


def load_key_cache(cache: Path, split: str,
                   excerpt_labels: dict[tuple[str, str], key_module.Key] | None = None) -> dict[str, np.ndarray]:
    """The key features of every part of `split` (`key-SPLIT*.npz` of `benchmarks.key_features`): octave chroma
    `[clips, 1 + KEY_SEGMENTS, 7, 12]` (as `music.key.octave_chroma` computes it from the cached frames), key
    labels and kinds; exits with a hint when there is none. With `excerpt_labels` (by split and file name,
    `benchmarks.bench_key_estimator.load_excerpt_labels`) a chorale clip listed there is labelled with its
    excerpt's key instead of the cached (piece) key."""
    excerpt_labels = excerpt_labels or {}
    files = sorted(cache.glob(f"key-{split}*.npz"))
    if not files:
        print(f"error: no key feature cache {cache}/key-{split}*.npz; run "
              f"`python -m benchmarks.key_features {split}` first", file=sys.stderr)
        raise SystemExit(2)
    chroma, labels, groups = [], [], []
    for file in files:
        with np.load(file) as data:
            data = {name: data[name] for name in data.files}  # an open npz decompresses on every access
        offsets = data["offsets"]
        for index in range(len(offsets) - 1):
            frames = data["frames"][:, offsets[index]:offsets[index + 1]].astype(np.float64)
            steady = frames.reshape(key_module.KEY_OCTAVES, 12, -1)
            chroma.append(key_module.segment_means(steady, key_module.KEY_SEGMENTS))
            excerpt = excerpt_labels.get((split, str(data["file_name"][index])))
            labels.append(excerpt.name if excerpt is not None else str(data["key"][index]))
            kind, part = str(data["kind"][index]), str(data["part"][index])
            groups.append(f"part: {part}" if kind == "part" and part else kind)
    return {"chroma": np.array(chroma), "key": np.array(labels), "group": np.array(groups)}


def key_dataset(data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(candidate features `[clips, 12, features]`, label index 0-23: major tonics, then minor tonics)."""
    features = np.array([key_module.candidate_features(chroma) for chroma in data["chroma"]])
    keys = [key_module.parse_key(name) for name in data["key"]]
    return features, np.array([12 * (key.mode == "minor") + key.tonic for key in keys])


def fit_member(features: np.ndarray, labels: np.ndarray, hidden: int, epochs: tuple[int, ...],
               seed: int) -> dict[int, dict[str, np.ndarray]]:
    """One member trained for max(`epochs`), its weights (as `music.key.candidate_scores` reads them, without
    the member axis) after each of `epochs`."""
    import torch

    torch.manual_seed(seed)
    size = features.shape[-1]
    linear = torch.nn.Linear(size, 2)
    deep = torch.nn.Sequential(torch.nn.Dropout(DROPOUT), torch.nn.Linear(size, hidden), torch.nn.ReLU(),
                               torch.nn.Dropout(DROPOUT), torch.nn.Linear(hidden, 2))
    parameters = [*linear.parameters(), *deep.parameters()]
    optimiser = torch.optim.AdamW(parameters, lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    inputs, targets = torch.tensor(features, dtype=torch.float32), torch.tensor(labels)
    snapshots = {}
    for epoch in range(1, max(epochs) + 1):
        deep.train()
        for batch in torch.randperm(len(targets)).split(BATCH):
            scores = linear(inputs[batch]) + deep(inputs[batch])  # [batch, 12, 2]
            loss = torch.nn.functional.cross_entropy(scores.transpose(1, 2).reshape(len(batch), 24), targets[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if epoch in epochs:
            snapshots[epoch] = {
                "linear": linear.weight.detach().numpy().T.copy(), "linear_bias": linear.bias.detach().numpy().copy(),
                "weights0": deep[1].weight.detach().numpy().T.copy(), "bias0": deep[1].bias.detach().numpy().copy(),
                "weights1": deep[4].weight.detach().numpy().T.copy(), "bias1": deep[4].bias.detach().numpy().copy()}
    return snapshots


def stack(members: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The members' weights stacked on a first axis, float32."""
    return {name: np.stack([member[name] for member in members]).astype(np.float32) for name in members[0]}


def fit_ensemble(features: np.ndarray, labels: np.ndarray, hidden: int,
                 epochs: tuple[int, ...]) -> dict[int, dict[str, np.ndarray]]:
    """`MEMBERS` members (seeds 0, 1, ...), stacked, after each of `epochs`."""
    runs = [fit_member(features, labels, hidden, epochs, seed) for seed in range(MEMBERS)]
    return {epoch: stack([run[epoch] for run in runs]) for epoch in epochs}


def predictions(features: np.ndarray, model: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(best key index 0-23, clarity: best minus second score) per clip."""
    scores = key_module.candidate_scores(features, model)  # [clips, 12, 2]
    scores = np.concatenate([scores[..., 0], scores[..., 1]], axis=1)
    ranked = np.sort(scores, axis=1)
    return scores.argmax(axis=1), ranked[:, -1] - ranked[:, -2]


def clarity_table(best: np.ndarray, clarity: np.ndarray, labels: np.ndarray) -> list[str]:
    """Lines: per clarity threshold, the share of clips reaching it and the exact share above and below."""
    lines = []
    for step in CLARITY_STEPS:
        sure = clarity >= step
        above = float(np.mean(best[sure] == labels[sure])) if sure.any() else float("nan")
        below = float(np.mean(best[~sure] == labels[~sure])) if (~sure).any() else float("nan")
        lines.append(f"clarity >= {step:g}: {sure.mean():.0%} of valid clips, {above:.1%} of those exact, "
                     f"{below:.1%} below")
    return lines


def learn_key_model(cache: Path, out: Path, chorale_labels: Path | None = None, train_excerpt_labels: bool = True,
                    hidden_sizes: tuple[int, ...] = HIDDEN, epochs_choices: tuple[int, ...] = EPOCHS) -> None:
    """Choose the hidden size and epochs on valid, print the clarity table, refit on train + valid, write `out`.

    With `chorale_labels` (a label file of `python -m scripts.chorale_key_check`) the valid chorales are judged
    on their excerpt's key, and, with `train_excerpt_labels`, the train and refit chorales learn it."""
    labels = load_excerpt_labels(chorale_labels) if chorale_labels is not None else {}
    x_train, y_train = key_dataset(load_key_cache(cache, "train", labels if train_excerpt_labels else None))
    valid = load_key_cache(cache, "valid", labels)
    x_valid, y_valid = key_dataset(valid)
    results = {}
    for hidden in hidden_sizes:
        for epochs, model in fit_ensemble(x_train, y_train, hidden, epochs_choices).items():
            best, clarity = predictions(x_valid, model)
            results[(hidden, epochs)] = (float(np.mean(best == y_valid)), best, clarity)
            hits = best == y_valid
            groups = ", ".join(f"{group} {np.mean(hits[valid['group'] == group]):.0%}"
                               for group in sorted(set(valid["group"])))
            print(f"key: hidden {hidden}, {epochs} epochs: {results[(hidden, epochs)][0]:.1%} exact on {len(y_valid)} "
                  f"valid clips (learned on {len(y_train)} train): {groups}", flush=True)
    hidden, epochs = max(results, key=lambda choice: results[choice][0])
    share, best, clarity = results[(hidden, epochs)]
    print("\n".join(clarity_table(best, clarity, y_valid)))
    if not train_excerpt_labels:  # the refit learns the valid chorales with the same labels as the train ones
        x_valid, y_valid = key_dataset(load_key_cache(cache, "valid"))
    model = fit_ensemble(np.concatenate([x_train, x_valid]), np.concatenate([y_train, y_valid]), hidden,
                         (epochs,))[epochs]
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **model, learned_on=np.array(
        f"train caches {', '.join(file.name for file in sorted(cache.glob('key-train*.npz')))} ({len(y_train)} "
        f"pitched clips) + valid ({len(y_valid)}); {MEMBERS} members, hidden {hidden}, {epochs} epochs (chosen on "
        f"valid: {share:.1%} exact with train only), dropout {DROPOUT}, weight decay {WEIGHT_DECAY}, chorales "
        f"labelled with {'the excerpt' if labels and train_excerpt_labels else 'the piece'}'s key; "
        "python -m benchmarks.learn_estimators key"))
    print(f"wrote {out}")
