"""The Listening test tab: a listener hears a blind pair (A and B drawn at random) and answers which is
better; what is compared is set on the experimenter's page."""
from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from studio.trials import PROTOCOL
from webapp.controls import Tab, wire_job
from webapp.handlers import Studio

# Each answer button and the answer it records.
ANSWERS = {"answer_a": "A", "answer_b": "B", "answer_same": "same"}


def build_listening_tab() -> Tab:
    """The tab's layout; `parts` holds the listener's name, the answer buttons and the trial being answered."""
    with gr.Tab("Listening test", id="listening"):
        gr.Markdown(f"**{PROTOCOL['question']}** Press *Next pair*, listen to both clips, then answer. "
                    "Which system plays as A is drawn at random every time and the files carry no names "
                    "or metadata. The experimenter chooses what is compared and reads the results on a "
                    "separate page.")
        parts = {"listener": gr.Textbox(label="Listener (optional)", placeholder="your name or initials",
                                        max_length=80)}
        with gr.Row():
            generate = gr.Button("Next pair", variant="primary", scale=4, elem_id="listen-next")
            stop = gr.Button("Stop", variant="stop", scale=1)
        status = gr.Markdown(elem_id="listen-status", elem_classes="job-status")
        with gr.Row():
            clip_a = gr.Audio(label="A", type="filepath", interactive=False, elem_id="listen-a")
            clip_b = gr.Audio(label="B", type="filepath", interactive=False, elem_id="listen-b")
        with gr.Row():
            parts["answer_a"] = gr.Button("A is better", elem_id="answer-a")
            parts["answer_same"] = gr.Button("Same / can't tell", elem_id="answer-same")
            parts["answer_b"] = gr.Button("B is better", elem_id="answer-b")
        parts["trial"] = gr.State(None)
    return Tab(parts, [parts["trial"], clip_a, clip_b, status], generate, stop, status)


def wire_listening_job(tab: Tab, studio: Studio, wrap: Callable[[Callable], Callable], queue: dict) -> None:
    """Next pair runs `Studio.listening_next` with the experimenter's settings (wrapped by `wrap`) in the
    Listening queue; each answer button records its answer to the current trial."""

    @wrap
    def run_next(progress=gr.Progress()):  # noqa: B008 (how Gradio asks for a progress bar)
        result = studio.listening_next(**studio.listening_settings(), progress=progress)
        return result.trial, result.clip_a, result.clip_b, result.status

    wire_job(tab, run_next, "ui_listening_next", queue)

    def answer_with(answer: str) -> Callable:
        def record(trial, listener):
            return studio.listening_answer(trial, answer, listener)

        return record

    for button, answer in ANSWERS.items():
        tab.parts[button].click(answer_with(answer), [tab.parts["trial"], tab.parts["listener"]],
                                [tab.parts["trial"], tab.status], api_name=f"ui_listening_answer_{answer.lower()}",
                                api_visibility="private")
