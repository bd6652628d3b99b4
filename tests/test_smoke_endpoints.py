"""The endpoint smoke test's own checks (`benchmarks/smoke_endpoints.py`): a wrong answer is reported, a
right one is not. The full run starts the app; it is run by hand (on CPU here, on CUDA on a GPU machine)."""
from __future__ import annotations

import numpy as np
import soundfile as sf

from benchmarks.smoke_endpoints import audio_problems, calls, parse_args


def write(path, audio, rate=16_000):
    sf.write(path, audio, rate)
    return str(path)


def test_a_good_output_has_no_problems(tmp_path):
    audio = np.random.default_rng(0).uniform(-0.3, 0.3, 16_000).astype(np.float32)
    output = {"audio": write(tmp_path / "a.wav", audio), "duration_s": 1.0, "loop": write(tmp_path / "l.wav", audio)}
    assert audio_problems(output, loop=True) == []


def test_missing_silent_short_and_loopless_outputs_are_reported(tmp_path):
    assert audio_problems({"audio": str(tmp_path / "gone.wav"), "duration_s": 1.0})[0].startswith("no audio file")
    silent = write(tmp_path / "s.wav", np.zeros(16_000, dtype=np.float32))
    assert audio_problems({"audio": silent, "duration_s": 1.0}) == ["silent"]
    noise = write(tmp_path / "n.wav", np.full(8_000, 0.2, dtype=np.float32))
    assert any("lasts 0.500 s" in problem for problem in audio_problems({"audio": noise, "duration_s": 1.0}))
    assert audio_problems({"audio": noise, "duration_s": 0.5, "loop": None}, loop=True) == ["no loop file"]


def test_every_generation_endpoint_and_audio_to_audio_mode_is_called():
    called = calls("input.wav", steps=4)
    assert {api for _, api, _ in called} == {"/loops", "/text_to_audio", "/audio_to_audio"}
    assert {inputs["mode"] for _, api, inputs in called if api == "/audio_to_audio"} == {
        "variation", "inpaint region", "outpaint around region", "continue"}
    assert all(inputs["steps"] == 4 for _, _, inputs in called)
    assert parse_args(["--device", "cuda"]).device == "cuda"
