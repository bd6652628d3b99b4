"""Limits of one request on a shared server (issue 24): the bytes of files a request may write, bounded
before any work; pruning that spares files in flight and not yet delivered; clear errors for odd values."""
from __future__ import annotations

import gradio as gr
import pytest

import app
from studio.budget import OutputRequest, audio_file_bytes, check_output
from tests.test_app_support import LOOPS, TEXT, make_studio, save_checkpoints

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
