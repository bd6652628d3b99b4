"""The page's assembly without a server (tiny random checkpoints): each tab's job takes its controls in the
order of the Studio method it calls, and `inputs_for` picks them by the handler's parameter names."""
from __future__ import annotations

import gradio as gr
import pytest

from tests.test_app_support import make_studio, save_checkpoints
from webapp.controls import inputs_for
from webapp.page import build_page

# Labels of each job's inputs, in the order `Studio.generate_loops`, `text_to_audio` and `audio_to_audio` take them.
JOB_INPUTS = {
    "ui_loops": ["Model", "Variations", "Seed", "Random seed", "Steps", "Scheduler", "Repeats in the loop file",
                 "Clip length (s; 0 = two bars at the tempo; else at least one bar: 2 s at 120 BPM)",
                 "Tempo (BPM; 0 = the model's own tempo, or detected)", "Prompt (text models)", "Key",
                 "Sample rate (Hz)", "Channels", "Format"],
    "ui_text_to_audio": ["Model (text models)", "Prompt", "Negative prompt", "Duration (s)",
                         "Start offset in the piece (s)", "Guidance scale", "Steps", "Scheduler", "Seed",
                         "Random seed", "Outputs", "Tempo (BPM; 0 = the prompt's, else the model's own)", "Key",
                         "Sample rate (Hz)", "Channels", "Format"],
    "ui_audio_to_audio": ["Model", "Input: upload or record", "Mode", "Strength", "Prompt (text models, optional)",
                          "Negative prompt (text models)", "Region start (s)", "Region end (s)", "Continue by (s)",
                          "Steps", "Scheduler", "Guidance scale (text models)", "Seed", "Random seed"],
    "ui_listening_next": [],
}


def test_inputs_follow_the_handler_parameters():
    with gr.Blocks():
        number, text = gr.Number(), gr.Textbox()

    def run(text, number, progress=gr.Progress()):  # noqa: B008
        return text, number

    assert inputs_for(run, {"number": number, "text": text, "unused": gr.Markdown()}) == [text, number]
    with pytest.raises(KeyError):
        inputs_for(lambda missing: missing, {"number": number})


def test_each_job_takes_its_controls_in_the_studio_order(tmp_path):
    studio = make_studio(tmp_path, save_checkpoints(tmp_path))
    demo = build_page(studio, concurrency=2)
    jobs = {fn.api_name: fn for fn in demo.fns.values() if fn.api_name in JOB_INPUTS}
    assert {name: [block.label for block in fn.inputs] for name, fn in jobs.items()} == JOB_INPUTS
    queues = {name: (fn.concurrency_id, fn.concurrency_limit) for name, fn in jobs.items()}
    assert queues == {"ui_loops": ("loops", 2), "ui_text_to_audio": ("text", 2), "ui_audio_to_audio": ("audio", 2),
                      "ui_listening_next": ("listening", 2)}
