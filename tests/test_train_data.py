"""Training data: audiofolder discovery, captions, the split by file, the mel cache, windows, crops, seeded order,
bad input."""
import json
import logging

import numpy as np
import pytest
import torch

from models.mel import Mel
from models.pipeline_mel_diffusion import MelDiffusionPipeline
from music.audio import load_audio
from music.audiofolder import file_sha256
from tests.test_train_audio import SAMPLE_RATE, clicks, sine, synthetic_clips, write_folder
from tests.tiny_models import tiny_unet
from training.batches import (
    SeededOrder,
    WindowSource,
    db_to_images,
    fixed_windows,
    positions_for,
)
from training.data import DataError, discover_dataset, read_split_lists, split_by_file
from training.mel_cache import MelCache, load_file_mels
from training.prepare import prepare_training_data
from training.presets import PRESETS

MICRO_MEL = PRESETS["micro"].mel  # 32 frames of 64 samples at 8 kHz: 0.256 s windows


@pytest.fixture()
def mel() -> Mel:
    return Mel(**MICRO_MEL)


@pytest.fixture()
def folder(tmp_path):
    return write_folder(tmp_path / "data", synthetic_clips(9))


# ---- discovery and split -------------------------------------------------------------------

def test_flat_folder_is_split_by_file_seeded_and_disjoint(folder):
    splits = discover_dataset(folder, valid_fraction=0.25, seed=3)
    names = lambda files: {item.file_name for item in files}
    assert len(splits.train) + len(splits.valid) == 9 and len(splits.valid) == 3
    assert not names(splits.train) & names(splits.valid)
    assert splits.test == [] and "by file" in splits.method
    again = discover_dataset(folder, valid_fraction=0.25, seed=3)
    assert names(again.valid) == names(splits.valid)
    assert names(discover_dataset(folder, valid_fraction=0.25, seed=4).valid) != names(splits.valid)
    caption = {item.file_name: item.text for item in splits.train + splits.valid}
    assert caption["clicks-2.ogg"] == "clicks at 160 BPM" and splits.has_captions
    assert {item.metadata["kind"] for item in splits.train} <= {"sine", "noise", "clicks"}


def test_adding_files_keeps_existing_files_on_their_side(folder):
    before = discover_dataset(folder, valid_fraction=0.3, seed=0)
    write_folder(folder / "more", [(f"extra-{i}.wav", sine(0.5, 300 + i), "") for i in range(3)], captions=False)
    after = discover_dataset(folder, valid_fraction=0.3, seed=0)
    moved = {item.file_name for item in before.train} & {item.file_name for item in after.valid}
    assert len(moved) <= 1  # only when the larger count demands one more valid file


def test_group_column_keeps_groups_on_one_side(folder):
    splits = discover_dataset(folder, valid_fraction=0.3, seed=0, group_column="kind")
    train_kinds = {item.metadata["kind"] for item in splits.train}
    valid_kinds = {item.metadata["kind"] for item in splits.valid}
    assert valid_kinds and not train_kinds & valid_kinds


def test_split_folders_are_the_split_and_test_is_never_trained(tmp_path):
    root = tmp_path / "corpus"
    clips = synthetic_clips(9)
    write_folder(root / "train", clips[:5])
    write_folder(root / "validation", clips[5:7])
    write_folder(root / "test", clips[7:])
    splits = discover_dataset(root, valid_fraction=0.5)
    assert [item.file_name for item in splits.train] == sorted(f"train/{name}" for name, _, _ in clips[:5])
    assert len(splits.valid) == 2 and len(splits.test) == 2
    assert all(item.text for item in splits.test)  # captions of each split's own metadata.jsonl
    splits.write(tmp_path / "lists")
    lists = read_split_lists(tmp_path / "lists")
    assert set(lists["test"]) == {item.path for item in splits.test}
    assert not set(lists["train"]) & (set(lists["valid"]) | set(lists["test"]))
    described = json.loads((tmp_path / "lists" / "splits.json").read_text())
    assert described["data_dir"] == str(root.resolve()) and len(described["train"]) == 5


def test_train_folder_without_valid_folder_is_split_by_file(tmp_path):
    write_folder(tmp_path / "train", synthetic_clips(6))
    splits = discover_dataset(tmp_path, valid_fraction=0.2)
    assert len(splits.valid) == 2 and len(splits.train) == 4 and "of train by file" in splits.method


def test_split_by_file_bad_fraction_and_single_file(folder):
    files = discover_dataset(folder, valid_fraction=0.0).train
    with pytest.raises(DataError, match="valid fraction"):
        split_by_file(files, 1.0, 0)
    train, valid = split_by_file(files[:1], 0.5, 0)
    assert len(train) == 1 and valid == []


# ---- bad input -------------------------------------------------------------------------------

def test_empty_folder_says_what_was_looked_for(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    with pytest.raises(DataError, match=r"No audio files in .*empty.*\.wav"):
        discover_dataset(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        discover_dataset(tmp_path / "missing")


def test_metadata_naming_missing_files_lists_them(folder):
    with (folder / "metadata.jsonl").open("a") as handle:
        handle.write(json.dumps({"file_name": "gone.wav", "text": "a deleted file"}) + "\n")
        handle.write(json.dumps({"file_name": "sub/also-gone.flac", "text": "another"}) + "\n")
    with pytest.raises(
        DataError, match=r"(?s)2 metadata rows name files that do not exist:.*gone\.wav.*also-gone\.flac"
    ):
        discover_dataset(folder)


def test_metadata_row_without_file_name_and_bad_json(folder):
    (folder / "metadata.jsonl").write_text('{"text": "no file name"}\n')
    with pytest.raises(DataError, match="no 'file_name'"):
        discover_dataset(folder)
    (folder / "metadata.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match=":1: not valid JSON"):
        discover_dataset(folder)


def test_unreadable_file_is_skipped_with_a_warning_and_counted(folder, mel, tmp_path, caplog):
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    with caplog.at_level(logging.WARNING):
        data = prepare_training_data(folder, mel, "fixed", tmp_path / "cache", valid_fraction=0.0, quiet=True)
    assert [item.file_name for item in data.splits.skipped] == ["broken.wav"]
    assert "unreadable" in data.splits.skipped[0].reason
    assert "broken.wav" not in {item.file.file_name for item in data.train}
    assert "broken.wav" not in {item.file_name for item in data.splits.train}
    assert any("broken.wav" in record.message for record in caplog.records)
    assert any("1 of 10 files were unreadable" in record.message for record in caplog.records)


def test_all_files_unreadable(tmp_path, mel):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.wav").write_bytes(b"garbage")
    with pytest.raises(DataError, match="All 1 train files .* unreadable"):
        prepare_training_data(tmp_path / "data", mel, "fixed", tmp_path / "cache", valid_fraction=0.0, quiet=True)


def test_clips_shorter_than_one_window(tmp_path, mel, caplog):
    short = [(f"short-{i}.wav", sine(0.1, 440 + i), "short") for i in range(3)]  # 0.1 s < 0.256 s window
    write_folder(tmp_path / "short", short)
    with pytest.raises(DataError, match=r"(?s)All 3 readable train clips are shorter than one window \(0\.26 s\).*"
                                        r"--pad-short-clips"):
        prepare_training_data(tmp_path / "short", mel, "fixed", tmp_path / "cache", valid_fraction=0.0, quiet=True)
    padded = prepare_training_data(tmp_path / "short", mel, "fixed", tmp_path / "cache", valid_fraction=0.0,
                                   pad_short=True, quiet=True)
    assert padded.stats.windows == 3 and padded.stats.padded_files == 3
    # The text model pads short clips (Stable Audio's scheme): no error, nothing skipped.
    cropped = prepare_training_data(tmp_path / "short", mel, "crop", tmp_path / "cache", valid_fraction=0.0,
                                    quiet=True)
    assert len(cropped.train) == 3 and not cropped.splits.skipped

    write_folder(tmp_path / "mixed", short + synthetic_clips(3))
    with caplog.at_level(logging.WARNING):
        mixed = prepare_training_data(tmp_path / "mixed", mel, "fixed", tmp_path / "cache", valid_fraction=0.0,
                                      quiet=True)
    assert len(mixed.stats.short_files) == 3 and len(mixed.train) == 3
    assert {item.reason for item in mixed.splits.skipped} == {"shorter than one window (0.26 s)"}
    assert "short-0.wav" not in {item.file_name for item in mixed.splits.train}
    assert any("3 clips are shorter than one window" in record.message for record in caplog.records)


def test_silent_windows_are_skipped(tmp_path, mel):
    audio = np.concatenate([sine(0.6, 440), np.zeros(int(0.6 * SAMPLE_RATE), np.float32), clicks(0.6, 240)])
    write_folder(tmp_path / "data", [("gap.wav", audio, "sine, silence, clicks")])
    data = prepare_training_data(tmp_path / "data", mel, "fixed", tmp_path / "cache", valid_fraction=0.0, quiet=True)
    window_s = mel.seconds_per_image
    starts_s = data.train_windows[:, 1] * mel.config.hop_length / SAMPLE_RATE
    assert data.stats.silent >= 1
    # No kept window lies wholly inside the silent 0.6-1.2 s stretch.
    assert not any(0.6 + 0.02 <= start and start + window_s <= 1.2 - 0.02 for start in starts_s)


def test_text_model_needs_captions(tmp_path, mel):
    write_folder(tmp_path / "data", synthetic_clips(3), captions=False)
    with pytest.raises(DataError, match="needs captions.*metadata.jsonl"):
        prepare_training_data(tmp_path / "data", mel, "crop", tmp_path / "cache", need_captions=True, quiet=True)


# ---- mel cache -------------------------------------------------------------------------------

def test_mel_cache_is_reused_and_keyed_by_content(folder, mel, tmp_path):
    files = discover_dataset(folder, valid_fraction=0.0).train
    cache = MelCache(tmp_path / "cache", mel)
    first, _ = load_file_mels(files, cache, quiet=True)
    assert (cache.hits, cache.misses) == (0, 9)
    again = MelCache(tmp_path / "cache", mel)
    second, _ = load_file_mels(files, again, quiet=True)
    assert (again.hits, again.misses) == (9, 0)
    assert all(np.array_equal(a.mel_db, b.mel_db) for a, b in zip(first, second))
    # Other bytes under the same name: a new key, recomputed.
    write_folder(folder, [(files[0].file_name, sine(1.0, 1234), "changed")], captions=False)
    changed = MelCache(tmp_path / "cache", mel)
    load_file_mels(files[:1], changed, quiet=True)
    assert changed.misses == 1 and file_sha256(files[0].path) != first[0].sha256
    # Other analysis settings: another folder of the cache.
    other = MelCache(tmp_path / "cache", Mel(**{**MICRO_MEL, "hop_length": 32}))
    assert other.folder != cache.folder


def test_cached_windows_are_the_pipelines_windows(tmp_path, mel):
    audio = np.concatenate([sine(0.5, 440), clicks(0.5, 200)])
    write_folder(tmp_path / "data", [("clip.wav", audio, "x")])
    data = prepare_training_data(tmp_path / "data", mel, "fixed", tmp_path / "cache", valid_fraction=0.0, quiet=True)
    source = WindowSource(data.train, x_res=32, hop_length=64, sample_rate=SAMPLE_RATE, top_db=80,
                          windows=data.train_windows)
    order = source.order.permutation(0)
    images = source.batch(np.argsort(order)).inputs  # window i at row i
    pipeline = MelDiffusionPipeline(unet=tiny_unet(), scheduler=None, mel=mel)
    # The file holds 16-bit samples: compare with what the pipeline makes of the file's audio.
    expected, _ = pipeline.audio_to_windows(load_audio(tmp_path / "data" / "clip.wav", SAMPLE_RATE))
    assert images.shape == (len(data.train_windows), 1, 32, 32)
    # float16 dB in the cache: within 2e-3 of the image scale ([-1, 1] over 80 dB).
    torch.testing.assert_close(images, expected[: len(images)], atol=2e-3, rtol=0)


def test_db_to_images_matches_mel_power_to_image(mel):
    power = torch.rand(3, 32, 32) ** 4
    db = 10 * torch.log10(power.clamp_min(1e-10))
    torch.testing.assert_close(db_to_images(db, 80), mel.power_to_image(power), atol=1e-5, rtol=0)


# ---- windows, crops and order -----------------------------------------------------------------

def test_fixed_windows_stride(folder, mel, tmp_path):
    files, _ = load_file_mels(discover_dataset(folder, valid_fraction=0.0).train, MelCache(tmp_path, mel), quiet=True)
    windows, stats = fixed_windows(files, 32, stride=16, silence_threshold_db=-200)
    for index, file_mel in enumerate(files):
        starts = windows[windows[:, 0] == index, 1]
        assert list(starts) == list(range(0, file_mel.frames - 32 + 1, 16))
    assert stats.windows == len(windows) and stats.silent == 0


def test_order_is_seeded_and_every_epoch_is_a_permutation():
    order = SeededOrder(7, seed=5)
    items, epochs = order.at(np.arange(21))
    for epoch in range(3):
        assert sorted(items[epochs == epoch]) == list(range(7))
    assert not np.array_equal(order.permutation(0), order.permutation(1))
    assert np.array_equal(SeededOrder(7, seed=5).at(np.arange(21))[0], items)
    assert not np.array_equal(SeededOrder(7, seed=6).at(np.arange(21))[0], items)


def test_positions_partition_the_stream():
    # 2 processes x 3 accumulation rounds x batch 4: each step takes 24 new consecutive positions.
    seen = [positions_for(step, micro, process, 4, 3, 2)
            for step in range(2) for micro in range(3) for process in range(2)]
    assert np.array_equal(np.sort(np.concatenate(seen)), np.arange(48))


def test_crops_tell_start_and_total_seconds_and_pad_short_files(tmp_path, mel):
    clips = [("long.wav", sine(1.5, 440), "long"), ("short.wav", clicks(0.1, 600), "short")]
    write_folder(tmp_path / "data", clips)
    data = prepare_training_data(tmp_path / "data", mel, "crop", tmp_path / "cache", valid_fraction=0.0, quiet=True)
    source = WindowSource(data.train, x_res=32, hop_length=64, sample_rate=SAMPLE_RATE, top_db=80, mode="crop",
                          seed=1)
    batch = source.batch(np.arange(40))  # 20 epochs of 2 files
    for key, start_s, total_s, image in zip(batch.keys, batch.seconds_start, batch.seconds_total, batch.inputs):
        name, start_frame = key.split("@")
        assert float(start_s) == pytest.approx(int(start_frame) * 64 / SAMPLE_RATE)
        if name == "long.wav":
            assert float(total_s) == pytest.approx(1.5) and 0 <= float(start_s) <= 1.5 - 0.256 + 64 / SAMPLE_RATE
        else:
            assert float(total_s) == pytest.approx(0.1) and float(start_s) == 0
            # 0.1 s of clicks, then silence: the image's right part is the -1 floor.
            assert torch.all(image[0, :, 16:] == -1.0) and image.max() == 1.0
    long_starts = {key for key in batch.keys if key.startswith("long")}
    assert len(long_starts) > 5  # a fresh crop every epoch
    assert source.batch(np.arange(40)).keys == batch.keys  # seeded


def test_caption_dropout_replaces_captions_by_empty_text(tmp_path, mel):
    write_folder(tmp_path / "data", synthetic_clips(4))
    data = prepare_training_data(tmp_path / "data", mel, "crop", tmp_path / "cache", valid_fraction=0.0, quiet=True)
    common = dict(x_res=32, hop_length=64, sample_rate=SAMPLE_RATE, top_db=80, mode="crop")
    captions = WindowSource(data.train, caption_dropout=0.3, **common).batch(np.arange(400)).captions
    assert 0.2 < captions.count("") / 400 < 0.4
    assert "" not in WindowSource(data.train, caption_dropout=0.0, **common).batch(np.arange(40)).captions
