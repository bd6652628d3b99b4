"""The Loops tab: a few variations from any model, each cut into a seamless loop at a tempo and key, with
the loop file (smpl loop points, acid tempo) and a zip of them all."""
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
from webapp.handlers import PROMPT_KEY, SCHEDULER_CHOICES, Studio
from webapp.tabs.models import is_text_model, model_info, steps_slider


def build_loops_tab(studio: Studio) -> Tab:
    """The tab's layout; `parts` holds the model picker, the Rescan button and every generation input."""
    registry, limits = studio.registry, studio.limits
    default_model = registry.default_label(False)
    with gr.Tab("Loops", id="loops"):
        with gr.Row():
            # Model pickers take any value, so every value reaches `ModelRegistry.resolve`, which loads only
            # the models it lists and answers everything else with one "unknown model" message.
            model = gr.Dropdown(registry.labels(needs_text=False), value=default_model, label="Model",
                                allow_custom_value=True, scale=4, elem_id="loops-model")
            rescan = gr.Button("Rescan models", scale=1, size="sm")
        parts = {"model": model, "rescan": rescan, "model_info": gr.Markdown(model_info(studio, default_model))}
        parts["prompt"] = gr.Textbox(label="Prompt (text models)", placeholder="funk drum loop, 100 BPM",
                                     visible=is_text_model(studio, default_model))
        with gr.Row():
            parts["variations"] = gr.Slider(1, limits.max_outputs, value=2, step=1, label="Variations")
            parts["repeats"] = gr.Slider(1, limits.max_repeats, value=4, step=1, label="Repeats in the loop file")
        parts |= seed_controls()
        with gr.Accordion("Sampler", open=False):
            with gr.Row():
                parts["steps"] = steps_slider(studio, default_model)
                parts["scheduler"] = gr.Dropdown(SCHEDULER_CHOICES, value="model default", label="Scheduler")
            with gr.Row():
                parts["seconds"] = gr.Number(value=0, minimum=0, maximum=limits.max_seconds,
                                             label="Clip length (s; 0 = two bars at the tempo; else at least one "
                                                   "bar: 2 s at 120 BPM)")
        with gr.Row():
            parts["bpm"] = gr.Number(value=0, minimum=0, maximum=BPM_RANGE[1], elem_id="loops-bpm",
                                     label="Tempo (BPM; 0 = the model's own tempo, or detected)")
            parts |= key_and_export_controls("loops")
        with gr.Row():
            generate = gr.Button("Generate loops", variant="primary", elem_id="loops-generate", scale=4)
            stop = gr.Button("Stop", variant="stop", elem_id="loops-stop", scale=1)
        status = gr.Markdown(elem_id="loops-status", elem_classes="job-status")
        slots, sends = output_slots("loops", "Variation", with_loops=True)
        parts["zip"] = gr.File(label="All variations: one zip, a JSON of the settings beside each file",
                               interactive=False, elem_id="loops-zip")
    return Tab(parts, [parts["seed"], status, *slots, parts["zip"]], generate, stop, status, sends)


def wire_loops_job(tab: Tab, studio: Studio, wrap: Callable[[Callable], Callable], queue: dict) -> None:
    """Generate loops runs `Studio.generate_loops` (wrapped by `wrap`) in the Loops queue."""

    @wrap
    def run_loops(model, variations, seed, randomize, steps, scheduler, repeats, seconds, bpm, prompt,
                  key=PROMPT_KEY, rate="model rate", channels="as generated", file_format="WAV 16-bit",
                  progress=gr.Progress()):  # noqa: B008 (how Gradio asks for a progress bar)
        result = studio.generate_loops(model, variations, seed, randomize, steps, scheduler, repeats, seconds,
                                       bpm, prompt, key, rate, channels, file_format, progress=progress)
        return [result.seed, result.status, *slot_updates(result, with_loops=True), zip_file(result)]

    wire_job(tab, run_loops, "ui_loops", queue)


def wire_loops_controls(tab: Tab, studio: Studio) -> None:
    """The picked model's info line, the prompt box shown for text models only, and the model's own steps."""

    def on_loops_model(label):
        return (model_info(studio, label), gr.update(visible=is_text_model(studio, label)),
                gr.update(value=studio.model_default_steps(label)))

    tab.parts["model"].change(on_loops_model, tab.parts["model"],
                              [tab.parts["model_info"], tab.parts["prompt"], tab.parts["steps"]],
                              api_visibility="private")
