"""Limits of one request on a shared server (issue 24): the bytes of files a request may write, bounded
before any work; pruning that spares files in flight and not yet delivered; clear errors for odd values."""
from __future__ import annotations

import gradio as gr
import numpy as np
import pytest

import app
from studio.budget import OutputRequest, audio_file_bytes, check_output
from studio.outputs import OutputStore
from studio.results import Output
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
