"""Issue 23, tempo: the learned beat activation (`music.beat_activation`) and its learning script
(`benchmarks.learn_beat_activation`): the numpy inference is the torch network, the targets sit on the labelled
beats, a network learned on click tracks (through the script's own training loop, saved and loaded offline) peaks
on the beats of another one, and its candidate features tell the tempo from its 3:2 and double."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks import learn_beat_activation
from music import beat_activation, tempo

RATE = 16000


def click_track(bpm: float, seconds: float = 6.0, first_in_s: float = 0.0) -> np.ndarray:
    """Short decaying noise clicks (10 ms) on every beat from `first_in_s`, a quiet noise floor between."""
    rng = np.random.default_rng(0)
    audio = 1e-3 * rng.standard_normal(int(seconds * RATE))
    click = rng.standard_normal(int(0.01 * RATE)) * np.exp(-np.arange(int(0.01 * RATE)) / (0.002 * RATE))
    for start in np.arange(first_in_s, seconds - 0.02, 60.0 / bpm):
        begin = round(start * RATE)
        audio[begin:begin + len(click)] += 0.5 * click
    return audio.astype(np.float32)


def inputs_of(audio: np.ndarray) -> np.ndarray:
    """The activation network's input of a clip, through the same functions as the corpus caches."""
    hop_in_s = tempo.onset_hop_samples(RATE) / RATE
    return beat_activation.clip_inputs(tempo.tempo_envelopes(audio, RATE), tempo.level_frames(audio, RATE),
                                       tempo.chroma_frames(audio, RATE), hop_in_s)


@pytest.fixture(scope="module")
def click_model(tmp_path_factory) -> dict[str, np.ndarray]:
    """A tiny network learned on click tracks at 70-160 BPM (beats from a random start), saved and loaded back as
    the learning script writes it."""
    hop_in_s = tempo.onset_hop_samples(RATE) / RATE
    rng = np.random.default_rng(3)
    inputs, targets = [], []
    for bpm, first_in_s in zip(rng.uniform(70, 160, 16), rng.uniform(0, 0.5, 16)):
        x = inputs_of(click_track(float(bpm), seconds=4.0, first_in_s=float(first_in_s)))
        inputs.append(x)
        targets.append(learn_beat_activation.beat_targets(x.shape[1], hop_in_s, float(bpm), float(first_in_s)))
    network = learn_beat_activation.train(inputs, targets, channels=8, blocks=4, epochs=60, seed=0, batch_size=16,
                                          learning_rate=1e-2, verbose=False)
    path = tmp_path_factory.mktemp("beat") / "clicks.npz"
    learn_beat_activation.save(network, path)
    return beat_activation.load_activation_model(path)


def test_the_numpy_inference_is_the_torch_network(tmp_path):
    torch.manual_seed(0)
    network = learn_beat_activation.BeatTCN(channels=6, blocks=3).eval()
    learn_beat_activation.save(network, tmp_path / "tiny.npz")
    with np.load(tmp_path / "tiny.npz") as data:
        weights = {name: data[name] for name in data.files}
    inputs = np.random.default_rng(1).standard_normal((beat_activation.INPUT_CHANNELS, 200)).astype(np.float32)
    with torch.no_grad():
        expected = torch.sigmoid(network(torch.from_numpy(inputs)[None]))[0].numpy()
    np.testing.assert_allclose(beat_activation.beat_activation(inputs, weights), expected, atol=1e-5)


def test_the_targets_sit_on_the_labelled_beats():
    frames, seconds, bpm = 626, 5.0, 120.0
    data = {"envelopes": np.ones((1, 4, frames), dtype=np.float32), "level_db": np.zeros((1, frames)),
            "chroma_frames": np.ones((1, 12, frames)), "frame_count": np.array([frames]),
            "clip": np.array([[seconds, 2.0, -10.0]]), "bpm": np.array([bpm])}
    inputs, target = learn_beat_activation.clip_arrays(data, 0)  # a corpus clip starts on a beat
    assert inputs.shape == (beat_activation.INPUT_CHANNELS, frames)
    hop_in_s = seconds / (frames - 1)
    beats = np.flatnonzero(target == 1.0)
    np.testing.assert_allclose(beats * hop_in_s, np.arange(10) * 0.5, atol=hop_in_s / 2)
    assert np.all(target[beats[1:] - 1] == 0.5) and np.all(target[beats + 1] == 0.5)
    assert np.count_nonzero(target) == 10 * 3 - 1  # the first beat has no frame before it


def test_the_activation_features_have_one_length_with_or_without_an_activation():
    with_activation = beat_activation.activation_features(np.random.default_rng(0).random(600), 100.0, 0.008)
    without = beat_activation.activation_features(None, 100.0, 0.008)
    assert with_activation.shape == without.shape and not without.any()
    assert np.all(np.isfinite(with_activation))


def test_a_learned_activation_peaks_on_the_beats_of_a_click_track(click_model):
    bpm, first_in_s = 100.0, 0.25
    activation = beat_activation.beat_activation(inputs_of(click_track(bpm, first_in_s=first_in_s)), click_model)
    hop_in_s = tempo.onset_hop_samples(RATE) / RATE
    beats = np.round((first_in_s + np.arange(9) * 60.0 / bpm) / hop_in_s).astype(int)
    near = np.array([activation[max(beat - 2, 0):beat + 3].max() for beat in beats])
    between = np.array([activation[beat + 12:beat + round(0.6 / hop_in_s) - 12].max() for beat in beats])
    assert near.min() > 0.3, near
    assert between.max() < 0.5 * near.min(), (between, near)


def test_the_activation_folds_sharper_at_the_tempo_than_at_its_3_to_2_and_double(click_model):
    activation = beat_activation.beat_activation(inputs_of(click_track(90.0)), click_model)
    hop_in_s = tempo.onset_hop_samples(RATE) / RATE
    contrast = beat_activation.activation_features(activation, 90.0, hop_in_s)[:len(beat_activation.ACTIVATION_RATIOS)]
    at_tempo, at_double, at_three_halves = contrast[0], contrast[1], contrast[3]
    assert at_tempo > at_double and at_tempo > at_three_halves


def test_the_learning_cli_rejects_bad_sizes(capsys):
    with pytest.raises(SystemExit) as stop:
        learn_beat_activation.main(["--channels", "0"])
    assert stop.value.code == 2
    assert "--channels" in capsys.readouterr().err
