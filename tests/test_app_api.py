"""The studio's programmatic API through `gradio_client` against the app on a free localhost port (tiny
random checkpoints): every named endpoint, its structured result read by field name, errors that name
the field, the listening test's privacy, the page's own events kept out of the API, and the
`gradio_client` examples of docs/app.md run as written."""
from __future__ import annotations

import json
import re
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from studio.captions import CAPTIONS_FILE, summarize_captions
from tests.test_app_support import (
    LATENT,
    LOOPS,
    TEXT,
    running_app,
    save_checkpoints,
)
from tests.tiny_models import SAMPLE_RATE, drum_like_signal
from webapp.api import GENERATION_ENDPOINTS, OTHER_ENDPOINTS

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
KEY = "experimenter-key-for-tests"
EXAMPLES = ["house drum loop, 124 BPM, TR-909 kit", "jazz upright bass line in F major, 96 BPM"]
DOCS = Path(__file__).resolve().parents[1] / "docs" / "app.md"


def describe_text_model(checkpoints: Path) -> None:
    """Give the tiny text model a captions.json, as the bundled one has."""
    rows = [{"file_name": f"x/{index}.flac", "text": text, "kind": kind, "bpm": bpm}
            for index, (text, kind, bpm) in enumerate(zip(EXAMPLES, ["kit_loop", "part"], [124, 96]))]
    (checkpoints / "text" / CAPTIONS_FILE).write_text(summarize_captions(rows).to_json())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("app-api")
    checkpoints = save_checkpoints(root)
    describe_text_model(checkpoints)
    # --max-work: the tiny models' 0.256 s windows make a default clip 21 windows long
    with running_app(root, "--max-steps", "50", "--listening-key", KEY, "--max-work", "100000") as (url, studio, _):
        yield url, studio, root


@pytest.fixture(scope="module")
def client(server):
    url, _, root = server
    return Client(url, verbose=False, download_files=str(root / "downloads"))


def samples(path: str) -> np.ndarray:
    return sf.read(path, dtype="float32", always_2d=True)[0]


def test_the_api_lists_the_named_endpoints_only(client):
    info = client.view_api(print_info=False, return_format="dict")
    assert set(info["named_endpoints"]) == {f"/{name}" for name in GENERATION_ENDPOINTS + OTHER_ENDPOINTS}
    assert not info["unnamed_endpoints"]
    loops = info["named_endpoints"]["/loops"]
    assert [parameter["parameter_name"] for parameter in loops["parameters"]] == [
        "model", "prompt", "variations", "seed", "steps", "scheduler", "clip_seconds", "bpm", "repeats", "key",
        "export_rate", "export_channels", "export_format"]
    assert "outputs" in loops["description"]


def test_models_lists_names_prompts_and_capabilities(client):
    models = {model["name"]: model for model in client.predict(api_name="/models")["models"]}
    assert models["checkpoints/text"]["text_conditioned"] is True
    assert sorted(models["checkpoints/text"]["example_prompts"]) == sorted(EXAMPLES)
    assert "Trained on" in models["checkpoints/text"]["capabilities"]
    assert models["checkpoints/loops"]["label"] == LOOPS and models["checkpoints/loops"]["origin"] == "bundled"


def test_loops_returns_named_fields(client):
    result = client.predict(model="checkpoints/loops", variations=2, seed=11, steps=2, scheduler="ddim",
                            api_name="/loops")
    assert result["endpoint"] == "loops" and result["model"] == "checkpoints/loops" and result["seed"] == 11
    first, second = result["outputs"]
    assert (first["seed"], second["seed"]) == (11, 12)
    assert first["sample_rate"] == SAMPLE_RATE and first["duration_s"] == pytest.approx(4.0, abs=1e-3)
    assert samples(first["audio"]).shape[0] == round(first["duration_s"] * SAMPLE_RATE)
    assert first["loop"] is not None and Path(first["loop"]).suffix == ".wav" and first["bpm"] > 0
    assert f"{first['bpm']:.1f} BPM" in first["loop_info"]
    settings = result["settings"]
    assert settings["steps"] == 2 and settings["scheduler"] == "ddim" and settings["seed"] == 11
    assert settings["sample_rate"] == SAMPLE_RATE and "model_source" not in settings
    again = client.predict(model=LOOPS, seed=12, steps=2, scheduler="ddim", api_name="/loops")
    np.testing.assert_array_equal(samples(again["outputs"][0]["audio"]), samples(second["audio"]))


def test_text_to_audio_returns_named_fields(client):
    result = client.predict(prompt="punchy drums, 120 BPM", seconds_total=0.5, steps=1, seed=21,
                            api_name="/text_to_audio")
    assert result["model"] == "checkpoints/text" and result["seed"] == 21  # the tab's default model
    (output,) = result["outputs"]
    assert output["duration_s"] == pytest.approx(0.5) and output["bpm"] is None and output["loop"] is None
    assert samples(output["audio"]).shape[0] == round(0.5 * SAMPLE_RATE)
    assert result["settings"]["prompt"] == "punchy drums, 120 BPM" and result["settings"]["seconds_total"] == 0.5


def test_audio_to_audio_returns_named_fields(client, tmp_path):
    upload = tmp_path / "in.wav"
    sf.write(upload, np.stack([drum_like_signal(0.4, 44_100)] * 2, axis=1) * 0.5, 44_100)
    result = client.predict(audio=handle_file(str(upload)), mode="continue", model="checkpoints/loops",
                            extend_seconds=0.2, steps=1, seed=9, api_name="/audio_to_audio")
    (output,) = result["outputs"]
    assert result["seed"] == 9 and output["duration_s"] == pytest.approx(0.6)
    assert sf.info(output["audio"]).subtype == "PCM_16"  # the 16-bit upload's own width
    assert result["settings"]["mode"] == "continue" and result["settings"]["input_file"] == "in.wav"
    assert "44100 Hz" in result["status"]


@pytest.mark.parametrize(("endpoint", "arguments", "field"), [
    ("/loops", {"steps": 10**6}, "Steps must be a whole number from 1 to 50"),
    ("/loops", {"variations": 9}, "Variations must be a whole number from 1 to 4"),
    ("/loops", {"clip_seconds": 1.0, "bpm": 120}, "Clip length must be 0"),
    ("/loops", {"bpm": 12}, "BPM must be"),
    ("/loops", {"seed": -1}, "Seed must be"),
    ("/text_to_audio", {"prompt": "drums", "seconds_total": 61}, "Duration must be in"),
    ("/text_to_audio", {"prompt": "drums", "guidance_scale": 99}, "Guidance scale must be"),
    ("/text_to_audio", {"prompt": "drums", "model": "checkpoints/loops"}, "does not take text"),
    ("/loops", {"model": "no/such/model/here"}, "Unknown model: pick one from the list"),
    ("/listening_answer", {"trial_id": "nope", "answer": "A"}, "unknown"),
])
def test_range_errors_name_the_field(client, endpoint, arguments, field):
    with pytest.raises(AppError, match=re.escape(field)):
        client.predict(**arguments, api_name=endpoint)


def test_an_api_client_cannot_point_the_server_at_its_files(server):
    """A raw request naming a server path, not an upload, is refused (gradio_client would upload it)."""
    _, studio, _ = server
    for path in ("/etc/hostname", str(studio.answers.path)):
        with pytest.raises(Exception, match="send the file itself"):
            studio.uploaded_path({"path": path, "meta": {"_type": "gradio.FileData"}})


def test_listening_test_by_api_with_the_key_for_results_only(client, server):
    _, studio, _ = server
    trial = client.predict(api_name="/listening_next")  # the defaults: generated vs real here
    assert trial["prompt"] in ("punchy drum loop, 120 BPM", "dusty breakbeat, 90 BPM")
    assert samples(trial["clip_a"]).shape == samples(trial["clip_b"]).shape
    assert trial["sample_rate"] == SAMPLE_RATE and "checkpoints/" not in trial["status"]
    answer = client.predict(trial_id=trial["trial_id"], answer="B", listener='=HYPERLINK("http://x")',
                            api_name="/listening_answer")
    assert answer == {"trial_id": trial["trial_id"], "answer": "B", "recorded": True}
    with pytest.raises(AppError, match="answered already"):
        client.predict(trial_id=trial["trial_id"], answer="A", api_name="/listening_answer")
    with pytest.raises(AppError, match="comparison is the experimenter's"):  # not an anonymous caller's
        client.predict(mode="two checkpoints", model_a="checkpoints/loops", model_b="checkpoints/latent", steps=1,
                       api_name="/listening_next")
    pair = client.predict(mode="two checkpoints", model_a="checkpoints/loops", model_b="checkpoints/latent", steps=1,
                          key=KEY, api_name="/listening_next")
    client.predict(trial_id=pair["trial_id"], answer="same", api_name="/listening_answer")

    for key in ("", "wrong", KEY.upper()):
        with pytest.raises(AppError, match="for the experimenter"):
            client.predict(key=key, api_name="/listening_results")
    results = client.predict(key=KEY, api_name="/listening_results")
    assert results["answers"] == 2
    assert {(pair["first"], pair["second"]) for pair in results["pairs"]} == {
        ("checkpoints/text", "real"), ("checkpoints/latent", "checkpoints/loops")}
    table = Path(results["answers_csv"]).read_text()
    assert "'=HYPERLINK" in table and ',=HYPERLINK' not in table
    with pytest.raises(urllib.error.HTTPError, match="403"):  # the log itself is never served
        urllib.request.urlopen(f"{client.src}gradio_api/file={studio.answers.path}")
    assert studio.answers.rows()[-1]["answer"] == "same"
    assert LATENT in studio.registry.labels() and TEXT in studio.registry.labels()


def test_the_page_events_are_not_part_of_the_api(client):
    for hidden in ("/ui_loops", "/ui_listening_next", "/ui_listening_answer_a", "/listening_summary"):
        with pytest.raises(ValueError, match="Cannot find a function"):
            client.predict(api_name=hidden)


def test_rescan_through_models(client, server):
    _, _, root = server
    shutil.copytree(root / "checkpoints" / "loops", root / "runs" / "fresh" / "checkpoint-1")
    names = [model["name"] for model in client.predict(rescan=True, api_name="/models")["models"]]
    assert "runs/fresh/checkpoint-1" in names
    result = client.predict(model="runs/fresh/checkpoint-1", steps=1, seed=1, api_name="/loops")
    assert result["model"] == "runs/fresh/checkpoint-1"


def test_the_documented_client_examples_run(server, tmp_path, monkeypatch):
    """Each ```python block of docs/app.md's API section, against this server."""
    url, _, _ = server
    text = DOCS.read_text()
    section = text[text.index("## API"):]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) >= 5, "one gradio_client example per tab"
    clip = tmp_path / "my-clip.wav"
    sf.write(clip, drum_like_signal(0.5, SAMPLE_RATE), SAMPLE_RATE)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        code = block.replace("http://127.0.0.1:7860/", url).replace("YOUR-EXPERIMENTER-KEY", KEY)
        exec(compile(code, str(DOCS), "exec"), namespace)  # noqa: S102 (our own documentation)


def test_loops_carry_seam_and_tempo_numbers_and_a_zip_of_settings(client):
    result = client.predict(model="checkpoints/loops", variations=2, seed=11, steps=2, bpm=120, api_name="/loops")
    first = result["outputs"][0]
    assert first["loop"] is not None and Path(first["loop"]).suffix == ".wav"
    assert {"seam_waveform_ratio", "seam_spectral_ratio", "beat_interval_cv"} <= set(first["loop_quality"])
    assert "seam" in first["loop_info"] and "beat-interval CV" in first["loop_info"]
    with zipfile.ZipFile(result["zip"]) as archive:  # both variations, clip and loop, each with its settings
        names = archive.namelist()
        assert len(names) == 8 and sum(name.endswith(".json") for name in names) == 4
        sidecar = json.loads(archive.read(Path(Path(first["loop"]).name).with_suffix(".json").name))
    assert sidecar["seed"] == 11 and sidecar["loop_file"] == Path(first["loop"]).name


def test_text_to_audio_exports_at_the_asked_rate_channels_and_format(client):
    result = client.predict(prompt="punchy drums", model="checkpoints/text", seconds_total=0.5, steps=1, seed=21,
                            export_rate="48000", export_channels="stereo", export_format="FLAC 24-bit",
                            api_name="/text_to_audio")
    info = sf.info(result["outputs"][0]["audio"])
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("FLAC", "PCM_24", 48_000, 2)
    assert info.frames == round(0.5 * 48_000)


def test_audio_to_audio_comes_back_in_the_uploads_rate_and_channels(client, tmp_path):
    upload = tmp_path / "in.wav"
    sf.write(upload, np.stack([drum_like_signal(0.4, 44_100)] * 2, axis=1) * 0.5, 44_100)
    result = client.predict(audio=handle_file(str(upload)), mode="continue", model="checkpoints/loops",
                            extend_seconds=0.2, steps=1, seed=9, api_name="/audio_to_audio")
    output = result["outputs"][0]["audio"]
    info = sf.info(output)
    assert (info.samplerate, info.channels, info.frames) == (44_100, 2, round(0.6 * 44_100))
    kept = round(0.4 * 44_100)  # the 0.4 s it kept are the upload's own samples
    np.testing.assert_array_equal(sf.read(output, dtype="int16")[0][:kept], sf.read(upload, dtype="int16")[0])


def test_one_clients_sampler_never_reaches_another_clients_model_default(server):
    """Issue 24: after client A asks for DDPM, client B's "model default" request runs with the model's own
    sampler (status and settings say so), and so does A's next default request."""
    url, _, root = server
    first = Client(url, verbose=False, download_files=str(root / "downloads-a"))
    second = Client(url, verbose=False, download_files=str(root / "downloads-b"))
    default = second.predict(model=LOOPS, seed=3, steps=2, api_name="/loops")["settings"]["scheduler"]
    asked = first.predict(model=LOOPS, seed=3, steps=2, scheduler="ddpm", api_name="/loops")
    assert asked["settings"]["scheduler"] == "ddpm" != default
    for client in (second, first):
        after = client.predict(model=LOOPS, seed=3, steps=2, api_name="/loops")
        assert after["settings"]["scheduler"] == default
        assert "ddpm" not in after["status"]
