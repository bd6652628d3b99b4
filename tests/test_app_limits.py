"""Limits of one request on a shared server (issue 24): the bytes of files a request may write, bounded
before any work; pruning that spares files in flight and not yet delivered; clear errors for odd values."""
from __future__ import annotations

import json

import gradio as gr
import numpy as np
import pytest
import soundfile as sf
import torch

import app
from music.export import ExportSettings
from music.loops import read_wav_metadata
from studio.budget import OutputRequest, audio_file_bytes, check_output
from studio.checks import MAX_PROMPT_CHARS
from studio.outputs import OutputStore
from studio.requests import AudioToAudioRequest, LoopsRequest, StudioLimits, TextToAudioRequest, export_settings
from studio.results import Output
from studio.trials import summarize
from tests.test_app_support import LOOPS, TEXT, make_studio, running_app, save_checkpoints
from webapp.handlers import MAX_MESSAGE_CHARS, user_errors

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.filterwarnings("ignore::UserWarning"),  # gr.Warning outside a server is a UserWarning
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return save_checkpoints(tmp_path_factory.mktemp("limits-models"))


def written(studio) -> list:
    root = studio.store.root
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


# ---- 1. output bytes -------------------------------------------------------------------------------

def test_output_bytes_count_rate_channels_depth_length_and_the_zip():
    one = audio_file_bytes(10.0, 48_000, 2, 3)
    assert 10 * 48_000 * 2 * 3 <= one < 10 * 48_000 * 2 * 3 + 64 * 1024
    request = OutputRequest(4, one, "Variations", ("Repeats to 3",))
    assert request.total_bytes == 8 * one  # every file twice: once alone, once in the zip
    check_output(request, request.total_bytes)  # at the limit: allowed
    with pytest.raises(ValueError, match=r"= 22\.\d MB, over the limit of 5\.5 MB of files per request\. To fit, "
                                         r"reduce Variations to 1, or Repeats to 3\.$"):
        check_output(request, 2 * one)


def test_a_loop_export_over_the_output_limit_is_refused_before_generating(tmp_path, checkpoints):
    studio = make_studio(tmp_path, checkpoints, max_output_mb=4.0)
    with pytest.raises(gr.Error) as error:
        studio.generate_loops(LOOPS, variations=1, steps=1, repeats=16, clip_seconds=0.8, bpm=300,
                              export_rate="192000", export_channels="stereo", export_format="WAV 24-bit")
    message = error.value.message
    assert "limit of 4.0 MB of files per request" in message
    for option in ("Export sample rate to model rate", "Export channels to mono", "Export format to 16-bit",
                   "Repeats to 2"):
        assert option in message
    assert written(studio) == []
    # The same loop at the model's own rate fits and is written.
    result = studio.generate_loops(LOOPS, variations=1, steps=1, repeats=2, clip_seconds=0.8, bpm=300)
    assert result.outputs[0].audio_path.is_file()


def test_a_text_export_over_the_output_limit_is_refused_naming_the_duration(tmp_path, checkpoints):
    studio = make_studio(tmp_path, checkpoints, max_output_mb=3.0)
    with pytest.raises(gr.Error, match=r"too much for this server.*reduce Outputs to \d, or Duration to [\d.]+ s, or "
                                       r"Export sample rate to model rate"):
        studio.text_to_audio(TEXT, "drums", seconds_total=1.0, steps=1, num_outputs=4, export_rate="192000",
                             export_channels="stereo", export_format="WAV 24-bit")
    assert written(studio) == []


def test_the_output_limit_is_a_flag():
    assert app.parse_args([]).max_output_mb == 256.0
    args = app.parse_args(["--max-output-mb", "10"])
    assert app.build_studio(args).limits.max_output_mb == 10.0
    with pytest.raises(SystemExit):
        app.parse_args(["--max-output-mb", "0"])


# ---- 4. pruning spares files in flight and not yet delivered ----------------------------------------

def tone(seconds: float = 0.1) -> np.ndarray:
    return (0.1 * np.sin(np.arange(int(seconds * 8000)) / 3)).astype(np.float32)


def test_pruning_spares_the_files_of_a_request_in_flight(tmp_path):
    store = OutputStore(tmp_path / "out", max_files=1, grace_seconds=0)
    other = store.write_audio("other", tone(), 8000, {"seed": 3})  # written outside any request
    with store.hold():  # one request: two clips and their zip, over the limit of 1 file
        first = store.write_audio("clip", tone(), 8000, {"seed": 1})
        second = store.write_audio("clip", tone(), 8000, {"seed": 2})
        assert first.is_file() and second.is_file()
        with store.hold():  # a nested block joins the request
            zipped = store.write_batch("loops", [Output(first, None, 1, 0.1, "a", settings={}),
                                                 Output(second, None, 2, 0.1, "b", settings={})])
        assert first.is_file() and second.is_file() and zipped.is_file()
        assert not other.is_file()  # pruned: not held, grace 0
    store.write_audio("later", tone(), 8000, {"seed": 4})  # the request ended: its files may go now
    assert not first.is_file() and not second.is_file() and not zipped.is_file()


def test_pruning_keeps_files_not_yet_delivered(tmp_path):
    store = OutputStore(tmp_path / "out", max_files=1)  # default grace: minutes
    paths = [store.write_audio("clip", tone(), 8000, {"seed": seed}) for seed in range(3)]
    with store.hold():
        paths.append(store.write_audio("clip", tone(), 8000, {"seed": 3}))
    store.write_audio("clip", tone(), 8000, {"seed": 4})
    assert all(path.is_file() for path in paths)  # over the limit for a while, none lost before delivery
    store.grace_seconds = 0
    store.prune()
    assert sum(path.is_file() for path in store.root.rglob("*.wav")) == 1


def test_a_request_whose_own_files_exceed_the_store_is_refused_before_generating(tmp_path, checkpoints):
    studio = make_studio(tmp_path, checkpoints)
    studio.workspace.store = OutputStore(tmp_path / "small", max_files=None, max_megabytes=0.2)
    with pytest.raises(gr.Error, match=r"more than this server keeps \(0\.2 MB of outputs\)"):
        studio.generate_loops(LOOPS, variations=2, steps=1, repeats=4, clip_seconds=0.8, bpm=300)
    assert not studio.store.root.exists() or written(studio) == []
    studio.workspace.store = OutputStore(tmp_path / "few", max_files=2, grace_seconds=0)
    with pytest.raises(gr.Error, match=r"write 5 files, more than this server keeps \(2 outputs\)"):
        studio.generate_loops(LOOPS, variations=2, steps=1, clip_seconds=0.8, bpm=300)


def test_a_loops_request_keeps_its_own_files_under_a_tight_store(tmp_path, checkpoints):
    """`--keep-output-mb 1` used to delete a request's clip when its zip was written."""
    studio = make_studio(tmp_path, checkpoints)
    studio.workspace.store = OutputStore(tmp_path / "tight", max_files=3, grace_seconds=0)
    studio.store.write_audio("older", tone(), 8000, {"seed": 9})  # another user's older file
    result = studio.generate_loops(LOOPS, variations=1, steps=1, clip_seconds=0.8, bpm=300)
    output = result.outputs[0]
    assert output.audio_path.is_file() and result.zip_path.is_file()
    assert output.loop_path is None or output.loop_path.is_file()


# ---- 9. smaller ones --------------------------------------------------------------------------------

@pytest.mark.parametrize("rate", ["inf", "1e400", "-inf", "nan", 1e400])
def test_an_overflowing_export_rate_gets_a_clear_error(rate):
    with pytest.raises(ValueError, match="Export sample rate must be"):
        export_settings(rate)
    with pytest.raises(ValueError, match="Export sample rate must be"):
        TextToAudioRequest("m", "drums", export_rate=rate).check(StudioLimits())


@pytest.mark.parametrize("prompt", [42, ["drums"], {"a": 1}, 1.5])
def test_a_prompt_that_is_not_text_names_the_field(prompt):
    with pytest.raises(ValueError, match=r"^Prompt must be text, got"):
        TextToAudioRequest("m", prompt).check(StudioLimits())


def test_a_lone_surrogate_in_a_prompt_names_the_field(tmp_path, checkpoints):
    for request in (TextToAudioRequest("m", "drums \ud800 loop"), LoopsRequest("m", prompt="\udfff"),
                    TextToAudioRequest("m", "drums", negative_prompt="x\ud83d")):
        with pytest.raises(ValueError, match=r"rompt holds a character that is not valid text .* at position \d+"):
            request.check(StudioLimits())
    studio = make_studio(tmp_path, checkpoints)
    with pytest.raises(gr.Error, match="Prompt holds a character"):
        studio.text_to_audio(TEXT, "drums \ud800", seconds_total=0.2, steps=1)


@pytest.mark.parametrize("field", ["export_rate", "export_channels", "export_format", "target_key", "scheduler"])
def test_errors_never_echo_a_huge_value(field):
    huge = "x" * 100_000
    with pytest.raises(ValueError) as error:
        TextToAudioRequest("m", "drums", **{field: huge}).check(StudioLimits())
    message = str(error.value)
    assert len(message) < 400 and "100,002 characters" in message


def test_number_fields_never_echo_a_huge_value():
    with pytest.raises(ValueError) as error:
        TextToAudioRequest("m", "drums", seconds_total="9" * 100_000).check(StudioLimits())
    assert len(str(error.value)) < 300
    with pytest.raises(ValueError) as error:
        AudioToAudioRequest("m", None, mode="m" * 100_000).check(StudioLimits())
    assert len(str(error.value)) < 300


def test_any_long_message_is_cut_before_it_reaches_the_page():
    with pytest.raises(gr.Error) as error, user_errors():
        raise ValueError("bad value " + "y" * 100_000)
    assert len(error.value.message) <= MAX_MESSAGE_CHARS + 3


def test_wav_files_keep_their_settings_for_long_non_ascii_prompts(tmp_path):
    prompt = ("ドラムループ、温かいベース、カフェ☕" * 40)[:MAX_PROMPT_CHARS]  # 3 kB as ASCII escapes
    store = OutputStore(tmp_path)
    loud = np.full((2, 800), 1.5, dtype=np.float32)  # written as float WAV
    params = {"prompt": prompt, "seed": 7, "model_source": "checkpoints/text", "steps": 20, "scheduler": "dpmsolver++",
              "seconds_total": 10.0, "guidance_scale": 3.0, "key_estimated": "A minor", "key_target": "C major"}
    paths = [store.write_audio("text", tone(), 8000, {"prompt": prompt, "seed": 7}),
             store.write_audio("text", loud, 8000, params),
             store.write_audio("text", tone(), 8000, params,
                               settings=ExportSettings(16_000, 2, "WAV 24-bit"))]
    for path in paths:
        metadata = read_wav_metadata(path)
        assert metadata["prompt"] == prompt and metadata["seed"] == "7" and metadata["task"] == "text"
        # libsndfile-based readers drop a string past about 2 kB: the settings stay under it
        assert json.loads(sf.SoundFile(path).comment)["prompt"] == prompt
        audio, rate = sf.read(path, always_2d=True)  # the audio is intact behind the appended chunk
        assert audio.shape[0] in (800, 1600) and rate in (8000, 16_000)
    assert np.allclose(sf.read(paths[1])[0], 1.5)


@pytest.mark.parametrize("device", ["bogus", "cuda:x", "mps"])
def test_a_bad_device_is_one_line_and_exit_2(device, capsys):
    with pytest.raises(SystemExit) as exit_:
        app.parse_args(["--device", device])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--device must be auto, cpu, cuda or cuda:N" in error and "Traceback" not in error


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a build without CUDA")
def test_cuda_on_a_cpu_build_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        app.parse_args(["--device", "cuda"])
    assert exit_.value.code == 2
    assert "no CUDA" in capsys.readouterr().err
    assert app.parse_args(["--device", "cpu"]).device == "cpu"


def test_listening_results_give_p_values_as_numbers():
    rows = [{"system_a": "a", "system_b": "b", "answer": "A", "preferred": "a"} for _ in range(6)]
    summary = summarize(rows)[0].as_dict()
    assert type(summary["p_value"]) is float and type(summary["ci_low"]) is float
    json.dumps(summary)


def test_raw_api_results_name_no_path_in_the_output_folder(tmp_path, checkpoints):
    """A raw `/gradio_api/call` result names its files by Gradio's served URL, not by `--output-dir`."""
    import httpx

    save_checkpoints(tmp_path)
    with running_app(tmp_path) as (url, studio, _):
        arguments = ["", "", 1, 5, 1, "model default", 0.8, 300, 2, "keep", "model rate", "as generated",
                     "WAV 16-bit"]
        event = httpx.post(url + "gradio_api/call/loops", json={"data": arguments}, timeout=60).json()["event_id"]
        text = httpx.get(url + f"gradio_api/call/loops/{event}", timeout=600).text
        assert "event: complete" in text, text[:500]
        assert str(studio.store.root) not in text and str(tmp_path) not in text
        result = json.loads(text.split("data: ", 1)[1].splitlines()[0])[0]
        audio = result["outputs"][0]["audio"]
        assert audio["url"].startswith(url.rstrip("/") + "/gradio_api/file=") or audio["url"].startswith(
            "/gradio_api/file=")
        served = httpx.get(audio["url"] if audio["url"].startswith("http") else url.rstrip("/") + audio["url"],
                           timeout=60)
        assert served.status_code == 200 and served.content[:4] == b"RIFF"
