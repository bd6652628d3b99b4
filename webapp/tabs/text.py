"""The Text to audio tab: clips from a text model's prompt, with example prompts from its training captions,
an optional tempo and key, export settings and a zip of every output."""
from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from music.tempo import BPM_RANGE
from webapp.controls import (
    Tab,
    key_and_export_controls,
    output_slots,
    seed_controls,
    slot_updates,
    wire_job,
    zip_file,
)
from webapp.handlers import DEFAULT_GUIDANCE, PROMPT_KEY, SCHEDULER_CHOICES, Studio
from webapp.tabs.models import model_info, steps_slider

# The prompt's placeholder when the model has no training captions to show.
PROMPT_HINT = "a genre, instruments, a key and a tempo"


def build_text_tab(studio: Studio) -> Tab:
    """The tab's layout; `parts` holds the model picker, its info line, the examples and every input."""
    registry, limits = studio.registry, studio.limits
    default_model = registry.default_label(True)
    with gr.Tab("Text to audio", id="text"):
        parts = {"model": gr.Dropdown(registry.labels(needs_text=True), value=default_model,
                                      label="Model (text models)", allow_custom_value=True)}
        parts["model_info"] = gr.Markdown(model_info(studio, default_model))
        examples = studio.example_prompts(default_model)
        parts["prompt"] = gr.Textbox(label="Prompt", lines=2, elem_id="text-prompt",
                                     placeholder=(examples or [PROMPT_HINT])[0])
        # Captions the selected model was trained on: words it knows, in the order it heard them.
        parts["examples"] = gr.Dataset(components=[parts["prompt"]], samples=[[text] for text in examples],
                                       label="Example prompts from the model's training captions (click one)",
                                       visible=bool(examples), elem_id="text-examples")
        parts["negative"] = gr.Textbox(label="Negative prompt", placeholder="distorted, noisy")
        with gr.Row():
            # The slider ends at the picked model's longest clip (its backend's capabilities).
            longest = studio.model_offers(default_model, load=False)[1]
            parts["seconds"] = gr.Slider(0.5, longest, value=min(5.0, longest), step=0.5, label="Duration (s)")
            parts["start"] = gr.Number(value=0.0, minimum=0, label="Start offset in the piece (s)")
            parts["outputs"] = gr.Slider(1, limits.max_outputs, value=1, step=1, label="Outputs")
        with gr.Row():
            parts["bpm"] = gr.Number(value=0, minimum=0, maximum=BPM_RANGE[1], elem_id="text-bpm",
                                     label="Tempo (BPM; 0 = the prompt's, else the model's own)")
            parts |= key_and_export_controls("text")
        parts |= seed_controls()
        with gr.Accordion("Sampler", open=False), gr.Row():
            parts["steps"] = steps_slider(studio, default_model)
            parts["guidance"] = gr.Slider(0.0, 15.0, value=DEFAULT_GUIDANCE, step=0.5, label="Guidance scale")
            parts["scheduler"] = gr.Dropdown(SCHEDULER_CHOICES, value="model default", label="Scheduler")
        with gr.Row():
            generate = gr.Button("Generate", variant="primary", scale=4, elem_id="text-generate")
            stop = gr.Button("Stop", variant="stop", scale=1)
        status = gr.Markdown(elem_classes="job-status")
        slots, sends = output_slots("text", "Output", with_loops=False)
        parts["zip"] = gr.File(label="All outputs: one zip, a JSON of the settings beside each file",
                               interactive=False)
    return Tab(parts, [parts["seed"], status, *slots, parts["zip"]], generate, stop, status, sends)


def wire_text_job(tab: Tab, studio: Studio, wrap: Callable[[Callable], Callable], queue: dict) -> None:
    """Generate runs `Studio.text_to_audio` (wrapped by `wrap`) in the Text queue."""

    @wrap
    def run_text(model, prompt, negative, seconds, start, guidance, steps, scheduler, seed, randomize, outputs,
                 bpm=0, key=PROMPT_KEY, rate="model rate", channels="as generated", file_format="WAV 16-bit",
                 progress=gr.Progress()):  # noqa: B008 (how Gradio asks for a progress bar)
        result = studio.text_to_audio(model, prompt, negative, seconds, start, guidance, steps, scheduler, seed,
                                      randomize, outputs, bpm, key, rate, channels, file_format,
                                      progress=progress)
        return [result.seed, result.status, *slot_updates(result, with_loops=False), zip_file(result)]

    wire_job(tab, run_text, "ui_text_to_audio", queue)


def wire_text_controls(tab: Tab, studio: Studio) -> None:
    """The picked model's info line, example prompts, prompt hint, longest duration and own steps; a clicked
    example fills the prompt."""
    parts = tab.parts

    def on_text_model(label, seconds):
        examples = studio.example_prompts(label)
        longest = studio.model_offers(label)[1]
        return (model_info(studio, label), gr.Dataset(samples=[[text] for text in examples], visible=bool(examples)),
                gr.update(placeholder=(examples or [PROMPT_HINT])[0]),
                gr.update(maximum=longest, value=min(float(seconds or 5.0), longest)),
                gr.update(value=studio.model_default_steps(label)))

    parts["model"].change(on_text_model, [parts["model"], parts["seconds"]],
                          [parts["model_info"], parts["examples"], parts["prompt"], parts["seconds"], parts["steps"]],
                          api_visibility="private")
    parts["examples"].click(lambda sample: sample[0], parts["examples"], parts["prompt"], api_visibility="private")
