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
        expected = torch.sigmoid(network(torch.from_numpy(inputs)[None]))[0, 0].numpy()
    np.testing.assert_allclose(beat_activation.beat_activation(inputs, weights), expected, atol=1e-5)


def test_the_targets_sit_on_the_labelled_beats():
    frames, seconds, bpm = 626, 5.0, 120.0
    data = {"envelopes": np.ones((1, 4, frames), dtype=np.float32), "level_db": np.zeros((1, frames)),
            "chroma_frames": np.ones((1, 12, frames)), "frame_count": np.array([frames]),
            "clip": np.array([[seconds, 2.0, -10.0]]), "bpm": np.array([bpm])}
    inputs, targets = learn_beat_activation.clip_arrays(data, 0)  # a corpus clip starts on a beat
    assert inputs.shape == (beat_activation.INPUT_CHANNELS, frames) and targets.shape == (1, frames)
    target = targets[0]
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


def test_the_downbeat_target_marks_every_fourth_beat_and_no_chorale_bar():
    frames, hop_in_s, bpm = 626, 0.008, 120.0
    downbeats = learn_beat_activation.downbeat_target(frames, hop_in_s, bpm, "drums")
    np.testing.assert_allclose(np.flatnonzero(downbeats == 1.0) * hop_in_s, [0.0, 2.0, 4.0], atol=hop_in_s / 2)
    assert np.isnan(learn_beat_activation.downbeat_target(frames, hop_in_s, bpm, "classical")).all()


def test_a_downbeat_network_learns_the_beat_and_leaves_out_unknown_bars():
    """Two outputs through the script's loss: a NaN downbeat row (a chorale) adds nothing to the loss, and the
    numpy inference gives both rows."""
    rng = np.random.default_rng(0)
    inputs = [rng.random((beat_activation.INPUT_CHANNELS, 300)).astype(np.float32) for _ in range(2)]
    targets = [np.array([learn_beat_activation.beat_targets(300, 0.008, 120.0),
                         learn_beat_activation.downbeat_target(300, 0.008, 120.0, subset)])
               for subset in ("drums", "classical")]
    network = learn_beat_activation.train(inputs, targets, channels=4, blocks=2, epochs=1, seed=0, verbose=False)
    loss = learn_beat_activation.mean_loss(network, inputs, targets)
    assert np.isfinite(loss)
    weights = {name: value.detach().numpy() for name, value in network.state_dict().items()}
    assert beat_activation.activations(inputs[0], weights).shape == (2, 300)


def test_the_downbeat_features_tell_the_bar_from_its_half_and_double():
    """A downbeat every 4 beats at 120 BPM (every 2 s) folds on 4 candidate beats sharply at 120, half as sharply
    at 240 (half the folds hold a downbeat), and at 60 its 4-beat fold holds two bars (half-bar ratio near 1)."""
    hop_in_s, frames = 0.008, 1250
    downbeat = np.zeros(frames)
    downbeat[np.round(np.arange(0, frames * hop_in_s, 2.0) / hop_in_s).astype(int)] = 1.0
    bar = beat_activation.BAR_BEATS.index(4.0)
    count = len(beat_activation.BAR_BEATS)
    at = {bpm: beat_activation.downbeat_features(downbeat, bpm, hop_in_s) for bpm in (60.0, 120.0, 240.0)}
    assert at[120.0][bar] > at[240.0][bar] + 0.5
    assert at[120.0][count + bar] < 0.2 and at[60.0][count + bar] > 0.8
    assert not beat_activation.downbeat_features(None, 120.0, hop_in_s).any()


def test_stretched_copies_share_their_source_clips_fold():
    fold = learn_beat_activation.clip_fold
    for name in ("drums/drums-00001.flac", "drums/drums-01531.flac", "band/band-00007.flac"):
        copy = name.replace(".flac", "-x1.flac")
        assert fold("stretch-train-1-of-2.npz", copy, 2) == fold("train-0-of-2.npz", name, 2)
        assert fold("train-1-of-2.npz", name, 5) == fold("train-0-of-2.npz", name, 5)


def test_stretch_tempi_stay_in_range_and_away_from_the_label():
    from benchmarks.stretch_train_loops import MIN_CHANGE, copy_tempi

    rng = np.random.default_rng(0)
    for bpm in (70.0, 120.0, 180.0):
        tempi = copy_tempi(bpm, 4, 0.55, 1.25, rng)
        assert len(tempi) == 4
        assert all(tempo.BPM_RANGE[0] <= value <= tempo.BPM_RANGE[1] for value in tempi)
        assert all(0.55 * bpm <= value <= 1.25 * bpm and abs(value / bpm - 1) >= MIN_CHANGE for value in tempi)


def test_a_stretched_copy_keeps_its_beats_on_the_scaled_label():
    """The stretch script's labels are exact: a 100 BPM click track played at 80 BPM has its clicks every 0.75 s
    from its start, and keeps the source's length."""
    from benchmarks.stretch_train_loops import stretched_copy

    audio = click_track(100.0, seconds=5.0)
    slowed = stretched_copy(audio, RATE, 100.0, 80.0)
    assert len(slowed) == len(audio)
    envelope = np.abs(slowed).reshape(-1, 80).max(axis=1)  # 5 ms blocks
    peaks = [int(np.argmax(envelope[round(beat / 0.005) - 10:round(beat / 0.005) + 10])) - 10
             for beat in np.arange(0.75, 4.5, 0.75)]
    assert max(abs(offset) for offset in peaks) <= 3, peaks  # within 15 ms of each scaled beat
