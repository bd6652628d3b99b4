"""Learn the weights of the project's tempo-candidate model and key profiles from labelled corpus clips.

    OMP_NUM_THREADS=1 python -m benchmarks.learn_estimators key     # writes music/key_profiles.json
    OMP_NUM_THREADS=1 python -m benchmarks.learn_estimators tempo   # prints CANDIDATE_WEIGHTS / _BIAS

- key: `music.key.octave_chroma` of 800 seeded pitched train clips (of 1,000 drawn with seed 1) and all
  219 pitched valid clips; a conditional-logit model (softmax over the 24 keys, every register rotated
  to the candidate tonic, one weight row per register and mode, L2 0.01 chosen on valid with the
  profiles learned on train only) fitted by L-BFGS. Never the test split.
- tempo: `music.tempo.tempo_curves` and the shipped grid estimate of every valid clip; each tempogram
  candidate labelled right when within 3.5% of the label; scikit-learn's logistic regression (C=1,
  chosen by 5-fold cross-validation on valid). Never the test split.

Learning is not timed and takes about 10 (key) and 5 (tempo) minutes on one loaded CPU thread.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from unittest import mock

import numpy as np
import soundfile as sf
from scipy.optimize import minimize
from tqdm.auto import tqdm

from music import key as key_module
from music import tempo as tempo_module


def read_rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines() if line.strip()]


def read_mono(folder: Path, name: str) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(folder / name, dtype="float32", always_2d=True)
    return audio.mean(axis=1), int(rate)


def key_dataset(folder: Path, rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(register chroma rotated to each of the 12 tonics `[clips, 12, 144]`, label index 0-23: major
    tonics then minor tonics)."""
    features, labels = [], []
    for row in tqdm(rows, desc=f"key chroma ({folder.name})"):
        registers = key_module.register_chroma(key_module.octave_chroma(*read_mono(folder, row["file_name"])))
        features.append([np.roll(registers, -tonic, axis=1).ravel() for tonic in range(12)])
        label = key_module.parse_key(row["key"])
        labels.append(12 * (label.mode == "minor") + label.tonic)
    return np.array(features), np.array(labels)


def fit_key(features: np.ndarray, labels: np.ndarray, l2: float) -> np.ndarray:
    """Weights `[2 * 144 + 2]` (major rows, minor rows, major bias, minor bias) of the conditional logit."""
    size = features.shape[-1]

    def loss(weights: np.ndarray) -> float:
        major, minor = weights[:size], weights[size:2 * size]
        scores = np.concatenate([features @ major + weights[-2], features @ minor + weights[-1]], axis=1)
        scores = scores - scores.max(axis=1, keepdims=True)
        log_p = scores[np.arange(len(labels)), labels] - np.log(np.exp(scores).sum(axis=1))
        return float(-log_p.mean() + l2 * np.sum(weights[:-2] ** 2))

    return minimize(loss, np.zeros(2 * size + 2), method="L-BFGS-B").x


def learn_key(corpus: Path, out: Path, train_clips: int, l2: float) -> None:
    train_rows = [row for row in read_rows(corpus / "train") if row.get("key")]
    chosen = sorted(np.random.default_rng(1).choice(len(train_rows), 1000, replace=False))[:train_clips]
    valid_rows = [row for row in read_rows(corpus / "valid") if row.get("key")]
    x_train, y_train = key_dataset(corpus / "train", [train_rows[i] for i in chosen])
    x_valid, y_valid = key_dataset(corpus / "valid", valid_rows)
    weights = fit_key(np.concatenate([x_train, x_valid]), np.concatenate([y_train, y_valid]), l2)
    size = x_train.shape[-1]
    out.write_text(json.dumps({
        "registers": ["whole", *(f"octave {i}" for i in range(1, 8)), "first quarter", "last quarter",
                      "first quarter C1-B3", "last quarter C1-B3"],
        "major": weights[:size].reshape(-1, 12).round(4).tolist(),
        "minor": weights[size:2 * size].reshape(-1, 12).round(4).tolist(),
        "bias": {"major": round(float(weights[-2]), 4), "minor": round(float(weights[-1]), 4)},
        "learned_on": f"data/corpus train ({train_clips} pitched clips) + valid ({len(valid_rows)}), L2 {l2} "
                      "(chosen on valid)",
    }, indent=1))
    print(f"wrote {out}")


def learn_tempo(corpus: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    features, labels = [], []
    for row in tqdm([row for row in read_rows(corpus / "valid") if row.get("bpm")], desc="tempo curves"):
        audio, rate = read_mono(corpus / "valid", row["file_name"])
        with mock.patch.object(tempo_module, "tempo_candidates", lambda *a, **k: []):
            grid_bpm = tempo_module.estimate_tempo(audio, rate).bpm
        curves = tempo_module.tempo_curves(audio, rate)
        total = curves[0] + curves[1]
        grid = tempo_module.TEMPO_GRID_BPM
        low, high = tempo_module.CANDIDATE_RANGE
        peaks = [i for i in range(1, len(grid) - 1) if total[i] >= total[i - 1] and total[i] >= total[i + 1]
                 and low <= grid[i] <= high]
        for index in sorted(peaks, key=lambda i: -total[i])[: tempo_module.CANDIDATE_COUNT]:
            features.append(tempo_module._candidate_features(curves, grid[index], grid_bpm))
            labels.append(abs(grid[index] / float(row["bpm"]) - 1) < 0.035)
    model = LogisticRegression(C=1.0, max_iter=5000).fit(np.array(features), np.array(labels))
    print("CANDIDATE_WEIGHTS =", np.round(model.coef_[0], 4).tolist())
    print("CANDIDATE_BIAS =", round(float(model.intercept_[0]), 4))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("key", "tempo"), help="which weights to learn")
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"),
                        help="corpus root with train/ and valid/ (default data/corpus)")
    parser.add_argument("--out", type=Path, default=Path("music/key_profiles.json"),
                        help="key profiles file to write (default music/key_profiles.json)")
    parser.add_argument("--train-clips", type=int, default=800, help="pitched train clips for the key (default 800)")
    parser.add_argument("--l2", type=float, default=0.01, help="L2 weight of the key model (default 0.01)")
    args = parser.parse_args(argv)
    if args.what == "key":
        learn_key(args.corpus, args.out, args.train_clips, args.l2)
    else:
        learn_tempo(args.corpus)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
