"""Key conditioning of the text model: the key embedding in the pipeline, key augmentation of data packs, training."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from models.key_embedding import NO_KEY, KeyEmbedding, index_key, key_index
from models.loading import load_pipeline
from music.key import Key, all_keys, parse_key, transpose_key_names
from tests.tiny_models import CONDITIONING_DIM, tiny_text_pipeline
from training.key_augment import choose_shifts, key_variant, transpose_chord
from training.pack import load_pack

PROMPT = "lo-fi chords in B minor, 90 BPM"


def keyed_pipeline(token_mode: str = "append", trained: bool = True):
    """The tiny text pipeline with a key embedding; `trained`: random output projections (as after training)."""
    pipeline = tiny_text_pipeline()
    torch.manual_seed(1)
    embedding = KeyEmbedding(conditioning_dim=CONDITIONING_DIM, vector_dim=2 * CONDITIONING_DIM, hidden_dim=16,
                             token_mode=token_mode)
    if trained:
        for layer in (embedding.token_proj, embedding.vector_proj):
            torch.nn.init.normal_(layer.weight, std=0.5)
    pipeline.register_modules(key_embedding=embedding)
    return pipeline


def generate(pipeline, prompt: str = PROMPT, **kwargs) -> np.ndarray:
    """One window, one guided step (both branches of classifier-free guidance)."""
    return pipeline(prompt, num_inference_steps=1, guidance_scale=3.0, generator=torch.Generator().manual_seed(0),
                    **kwargs).audios


def test_key_classes_cover_the_24_keys_and_none():
    assert [key_index(key) for key in all_keys()] == list(range(24)) and key_index(None) == NO_KEY == 24
    assert all(index_key(key_index(key)) == key for key in [*all_keys(), None])


@pytest.mark.parametrize("token_mode", ["append", "add_to_text"])
def test_the_key_changes_the_output_and_the_prompt_names_it(token_mode):
    pipeline = keyed_pipeline(token_mode)
    named = generate(pipeline)
    assert np.array_equal(named, generate(pipeline, key=parse_key("Bm")))  # the prompt's key is the key used
    assert not np.allclose(named, generate(pipeline, key="C major"), atol=1e-4)
    assert not np.allclose(named, generate(pipeline, key="none"), atol=1e-4)
    # A prompt that names no key is conditioned on "none".
    assert np.array_equal(generate(pipeline, "lo-fi chords, 90 BPM"), generate(pipeline, "lo-fi chords, 90 BPM",
                                                                               key="none"))


def test_a_bad_key_is_a_value_error_naming_it():
    for pipeline in (tiny_text_pipeline(), keyed_pipeline()):
        with pytest.raises(ValueError, match="H minor"):
            generate(pipeline, key="H minor")


def test_without_a_key_embedding_the_key_changes_nothing():
    """A checkpoint trained without the key token (the bundled one) behaves as before: the key stays in the words."""
    pipeline = tiny_text_pipeline()
    assert pipeline.key_embedding is None
    assert np.array_equal(generate(pipeline), generate(pipeline, key="C major"))


def test_a_fresh_key_embedding_starts_from_the_checkpoints_behaviour():
    """Zero-initialised and added to the caption's token, a new key embedding changes no output of the model it
    is added to (a fine-tune starts from today's model); its own token (append) is masked out for "none"."""
    pipeline = tiny_text_pipeline()
    before = generate(pipeline)
    pipeline.register_modules(key_embedding=KeyEmbedding(CONDITIONING_DIM, 2 * CONDITIONING_DIM, 16, "add_to_text"))
    assert np.array_equal(before, generate(pipeline))
    appended = keyed_pipeline("append", trained=False)
    assert np.allclose(generate(appended, key="none"), before, atol=1e-5)


def trained_embedding(token_mode: str, none_adds_nothing: bool) -> KeyEmbedding:
    """A key embedding with random (as if trained) projections, its "none" row included."""
    torch.manual_seed(2)
    embedding = KeyEmbedding(CONDITIONING_DIM, 2 * CONDITIONING_DIM, 16, token_mode, none_adds_nothing)
    for layer in (embedding.token_proj, embedding.vector_proj):
        torch.nn.init.normal_(layer.weight, std=0.5)
        torch.nn.init.normal_(layer.bias, std=0.5)
    return embedding


@pytest.mark.parametrize("token_mode", ["append", "add_to_text"])
def test_with_none_adding_nothing_a_trained_embedding_leaves_no_key_prompts_bit_for_bit(token_mode):
    """`none_adds_nothing`: a prompt without a key (and guidance's unconditional branch) generates exactly what the
    model without the embedding does, while a named key still changes the output; with a learned "none" vector
    (the default) the same trained embedding changes no-key prompts too."""
    plain = "lo-fi chords, 90 BPM"
    pipeline = tiny_text_pipeline()
    without = {prompt: generate(pipeline, prompt) for prompt in (plain, PROMPT)}
    pipeline.register_modules(key_embedding=trained_embedding(token_mode, none_adds_nothing=True))
    assert np.array_equal(generate(pipeline, plain), without[plain])
    assert np.array_equal(generate(pipeline, PROMPT, key="none"), without[PROMPT])
    assert not np.allclose(generate(pipeline, PROMPT), without[PROMPT], atol=1e-4)
    token, mask, vector = pipeline.key_embedding(torch.tensor([NO_KEY, 3]))
    assert not token[0].any() and not vector[0].any() and token[1].any() and vector[1].any()
    assert mask.flatten().tolist() == [0, 1]
    pipeline.register_modules(key_embedding=trained_embedding(token_mode, none_adds_nothing=False))
    assert not np.allclose(generate(pipeline, plain), without[plain], atol=1e-4)


def test_output_norms_are_those_of_the_24_keys():
    embedding = trained_embedding("add_to_text", none_adds_nothing=True)
    token, _, vector = embedding(torch.arange(NO_KEY))
    norms = embedding.output_norms()
    assert norms["key_token_norm"] == pytest.approx(float(token[:, 0].detach().norm(dim=-1).mean()))
    assert norms["key_vector_norm"] == pytest.approx(float(vector.detach().norm(dim=-1).mean()))
    assert norms["none_vector_norm"] == 0.0
    assert KeyEmbedding(none_adds_nothing=False).output_norms()["key_vector_norm"] == 0.0  # zero-initialised


def test_the_key_embedding_round_trips_through_save_and_load(tmp_path):
    pipeline = keyed_pipeline("append")
    expected = generate(pipeline)
    pipeline.save_pretrained(tmp_path / "keyed")
    index = json.loads((tmp_path / "keyed" / "model_index.json").read_text())
    assert index["key_embedding"] == ["models.key_embedding", "KeyEmbedding"]
    loaded = load_pipeline(tmp_path / "keyed", device="cpu", floor_stage=False)
    assert isinstance(loaded.key_embedding, KeyEmbedding) and loaded.key_embedding.config.token_mode == "append"
    assert loaded.key_embedding.config.none_adds_nothing is False  # the default, also for configs saved without it
    for name, value in pipeline.key_embedding.state_dict().items():
        assert torch.equal(value, loaded.key_embedding.state_dict()[name])
    assert np.allclose(generate(loaded), expected, atol=1e-3)  # float rounding through Griffin-Lim
    # A pipeline saved without one loads without one.
    tiny_text_pipeline().save_pretrained(tmp_path / "plain")
    assert load_pipeline(tmp_path / "plain", device="cpu", floor_stage=False).key_embedding is None


# ---- key augmentation ----------------------------------------------------------------------------

def test_captions_keys_and_chords_are_rewritten_with_the_shift():
    variant = key_variant("funk clavinet chord progression Ebm7 Abm7 Ebm7 Bb7 in Eb minor at 98 BPM", "Eb minor", 2,
                          ["Ebm7", "Abm7", "Ebm7", "Bb7"])
    assert variant.caption == "funk clavinet chord progression Fm7 Bbm7 Fm7 C7 in F minor at 98 BPM"
    assert variant.key == "F minor" and variant.chords == ("Fm7", "Bbm7", "Fm7", "C7")
    assert key_variant("132 BPM techno chords, key of A minor", "A minor", -3).caption == \
        "132 BPM techno chords, key of F# minor"
    assert key_variant("rock guitar in B major", "B major", 5).key == "E major"
    assert transpose_chord("F#m7b5", 1) == "Gm7b5" and transpose_chord("Cmaj7", -1) == "Bmaj7"
    assert transpose_key_names("a major hit in C minor", 1) == "a major hit in Db minor"  # "a major" names no key


def test_shifts_are_distinct_seeded_and_within_range():
    shifts = choose_shifts("train/melodic/melodic-00001.flac", 3, seed=0)
    assert shifts == choose_shifts("train/melodic/melodic-00001.flac", 3, seed=0)
    assert len(set(shifts)) == 3 and all(-6 <= shift <= 5 and shift != 0 for shift in shifts)
    assert all(abs(shift) <= 2 for shift in choose_shifts("x.flac", 4, max_semitones=2))
    with pytest.raises(ValueError, match="key shifts"):
        choose_shifts("x.flac", 5, max_semitones=2)


RATE = 8000
PACK_ARGS = ["--sample-rate", "8000", "--n-fft", "256", "--hop-length", "64", "--mel-bands", "32",
             "--frames-per-beat", "4", "--beats-per-bar", "4", "--max-bars", "0", "--jobs", "1"]


def tone(frequency: float, seconds: float = 4.0) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


@pytest.fixture(scope="module")
def keyed_corpus(tmp_path_factory):
    """A pitched train clip (A minor, a 440 Hz tone), a drum train clip (no key) and a pitched valid clip."""
    root = tmp_path_factory.mktemp("keyed")
    clips = {"train": [("melodic/a.flac", tone(440.0), "chords in A minor, 120 BPM", "A minor", "melodic"),
                       ("drums/d.flac", np.random.default_rng(0).standard_normal(RATE * 4).astype(np.float32) * 0.1,
                        "drum loop, 120 BPM", "", "drums")],
             "valid": [("melodic/v.flac", tone(330.0), "chords in E minor, 120 BPM", "E minor", "melodic")]}
    for split, rows in clips.items():
        lines = []
        for name, audio, text, key, subset in rows:
            (root / split / name).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / split / name, audio, RATE)
            lines.append(json.dumps({"file_name": name, "text": text, "bpm": 120.0, "key": key, "subset": subset}))
        (root / split / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def keyed_pack(keyed_corpus, tmp_path_factory):
    from scripts.build_pack import main

    path = tmp_path_factory.mktemp("keyed-pack") / "pack.npz"
    assert main([str(keyed_corpus), "--out", str(path), "--key-shifts", "2", *PACK_ARGS]) == 0
    return load_pack(path)


def test_the_pack_shifts_pitched_train_clips_and_leaves_drums_and_valid_alone(keyed_pack):
    pack = keyed_pack
    names = pack.file_name.tolist()
    assert names.count("train/melodic/a.flac") == 3 and names.count("train/drums/d.flac") == 1
    assert names.count("valid/melodic/v.flac") == 1
    originals = {name: i for i, name in enumerate(names) if not pack.shift[i]}
    assert pack.key[originals["train/drums/d.flac"]] == NO_KEY
    assert pack.key[originals["valid/melodic/v.flac"]] == key_index(Key(4, "minor"))
    source = originals["train/melodic/a.flac"]
    peak = int(pack.clip_db(source).mean(axis=1).argmax())
    for index in np.flatnonzero(pack.shift):
        shift = int(pack.shift[index])
        key = Key(9, "minor").transposed(shift)
        assert pack.key[index] == key_index(key)
        assert pack.caption[index] == f"chords in {key.flat_name}, 120 BPM"
        shifted_peak = int(pack.clip_db(index).mean(axis=1).argmax())  # the tone's mel band moved with the shift
        assert np.sign(shifted_peak - peak) == np.sign(shift)
    assert pack.info["key_shifts"] == 2


def test_packs_without_keys_read_as_no_key(keyed_pack, tmp_path):
    from training.pack import Pack, save_pack

    fields = {name: getattr(keyed_pack, name) for name in (
        "mel", "offsets", "split", "subset", "file_name", "sha256", "caption", "bpm", "seconds", "text_embeddings",
        "empty_text_embedding")}
    old = Pack(info=dict(keyed_pack.info), **fields)
    assert np.all(old.key == NO_KEY) and np.all(old.shift == 0)
    assert np.all(load_pack(save_pack(tmp_path / "old.npz", old)).key == NO_KEY)


# ---- training ------------------------------------------------------------------------------------

def train(pack_file, output, *extra):
    from training.train_pack import main

    return main([str(pack_file), "--model", "text", "--preset", "micro", "--output-dir", str(output), "--cpu",
                 "--threads", "1", "--batch-size", "4", "--log-every", "1", "--valid-items", "4",
                 "--warmup-steps", "1", "--quiet", *extra])


def test_training_adds_the_key_embedding_and_init_from_keeps_the_rest(keyed_corpus, tmp_path):
    from scripts.build_pack import main

    pack_file = tmp_path / "pack.npz"
    assert main([str(keyed_corpus), "--out", str(pack_file), "--key-shifts", "1", *PACK_ARGS]) == 0
    # A model trained without keys (as the bundled one), then continued with them.
    assert train(pack_file, tmp_path / "plain", "--max-steps", "1", "--key-conditioning", "off") == 0
    plain = tmp_path / "plain" / "checkpoint-0000001"
    assert not (plain / "key_embedding").exists()
    assert train(pack_file, tmp_path / "keyed", "--max-steps", "3", "--init-from", str(plain)) == 0
    keyed = tmp_path / "keyed" / "checkpoint-0000003"
    pipeline = load_pipeline(keyed, device="cpu", floor_stage=False)
    assert pipeline.key_embedding is not None and pipeline.key_embedding.config.token_mode == "add_to_text"
    assert pipeline.key_embedding.vector_proj.weight.abs().sum() > 0  # it was trained
    info = json.loads((keyed / "training_info.json").read_text())
    assert info["key_conditioning"] is True
    assert sorted((keyed / "train_files.txt").read_text().split()) == ["train/drums/d.flac", "train/melodic/a.flac"]
    # A model trained with keys from the start has its own token.
    assert train(pack_file, tmp_path / "fresh", "--max-steps", "1") == 0
    fresh = json.loads((tmp_path / "fresh" / "checkpoint-0000001" / "key_embedding" / "config.json").read_text())
    assert fresh["token_mode"] == "append"


def test_pack_option_errors_are_one_line_with_status_2(keyed_corpus, tmp_path, capsys):
    from scripts.build_pack import main

    assert main([str(keyed_corpus), "--out", str(tmp_path / "x.npz"), "--only", "part", *PACK_ARGS]) == 2
    assert "--only takes FIELD=VALUE" in capsys.readouterr().err
    assert main([str(keyed_corpus), "--out", str(tmp_path / "y.npz"), "--key-shifts", "12", *PACK_ARGS]) == 2
    assert "key shifts per clip must be in [0, 11]" in capsys.readouterr().err


def test_train_only_the_key_embedding_freezes_the_rest_and_leaves_no_key_prompts_unchanged(keyed_corpus, tmp_path):
    """`--train-only key_embedding` (textual-inversion style): only the key embedding's weights move, the rest of the
    saved pipeline is the checkpoint's bit for bit, "none" adds nothing, so a prompt without a key generates
    exactly what the checkpoint does while a named key does not; the key norms are logged."""
    from scripts.build_pack import main
    from training.engine import read_log

    pack_file = tmp_path / "pack.npz"
    assert main([str(keyed_corpus), "--out", str(pack_file), "--key-shifts", "1", *PACK_ARGS]) == 0
    assert train(pack_file, tmp_path / "plain", "--max-steps", "1", "--key-conditioning", "off") == 0
    plain = tmp_path / "plain" / "checkpoint-0000001"
    assert train(pack_file, tmp_path / "inv", "--max-steps", "3", "--init-from", str(plain), "--train-only",
                 "key_embedding", "--learning-rate", "1e-2", "--caption-dropout", "0", "--key-dropout", "0") == 0
    before = load_pipeline(plain, device="cpu", floor_stage=False)
    after = load_pipeline(tmp_path / "inv" / "checkpoint-0000003", device="cpu", floor_stage=False)
    assert after.key_embedding.config.none_adds_nothing and after.key_embedding.config.token_mode == "add_to_text"
    for name in ("unet", "projection_model"):
        old, new = getattr(before, name).state_dict(), getattr(after, name).state_dict()
        assert old.keys() == new.keys() and all(torch.equal(old[key], new[key]) for key in old), name
    assert after.key_embedding.vector_proj.weight.abs().sum() > 0 and after.key_embedding.token_proj.weight.any()
    plain_prompt = "chords, 120 BPM"
    assert np.array_equal(generate(after, plain_prompt), generate(before, plain_prompt))
    keyed_prompt = "chords in A minor, 120 BPM"
    assert not np.allclose(generate(after, keyed_prompt), generate(before, keyed_prompt), atol=1e-6)
    logged = [row for row in read_log(tmp_path / "inv") if "key_vector_norm" in row]
    assert len(logged) == 2  # steps 2 and 3: the step count continues from the checkpoint's
    assert logged[-1]["key_vector_norm"] > 0 and logged[-1]["timing_vector_norm"] > 0
    assert all(row["none_vector_norm"] == 0 for row in logged)


def test_train_only_needs_the_component(keyed_corpus, tmp_path, capsys):
    from scripts.build_pack import main

    pack_file = tmp_path / "pack.npz"
    assert main([str(keyed_corpus), "--out", str(pack_file), *PACK_ARGS]) == 0
    assert train(pack_file, tmp_path / "x", "--max-steps", "1", "--train-only", "key_embedding",
                 "--key-conditioning", "off") == 2
    assert "--train-only key_embedding needs --model text and key conditioning" in capsys.readouterr().err
