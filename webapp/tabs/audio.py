"""The Audio to audio tab: an upload or recording turned into a variation, a continuation or an in/outpainted
region by the picked model; every generated clip on the page can be sent here as the input."""
from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from webapp.controls import Tab, seed_controls, spectrogram, wire_job
from webapp.handlers import MODE_HELP, SCHEDULER_CHOICES, Studio
from webapp.tabs.models import is_text_model, model_info

# Clicks the Audio to audio tab after a "Send to audio to audio" button filled its input.
SHOW_AUDIO_TAB_JS = ("() => { const tab = [...document.querySelectorAll('button[role=\"tab\"]')]"
                     ".find(button => button.textContent.trim() === 'Audio to audio'); if (tab) tab.click(); }")


def build_audio_tab(studio: Studio) -> Tab:
    """The tab's layout; `parts` holds the model picker, its info line and every generation input."""
    registry, limits = studio.registry, studio.limits
    default_model = registry.default_label()
    with gr.Tab("Audio to audio", id="audio"):
        parts = {"model": gr.Dropdown(registry.labels(), value=default_model, label="Model", allow_custom_value=True)}
        parts["model_info"] = gr.Markdown(model_info(studio, default_model))
        parts["audio"] = gr.Audio(label="Input: upload or record", sources=["upload", "microphone"], type="filepath",
                                  elem_id="audio-input")
        modes = studio.model_offers(default_model, load=False)[0]  # the model's modes
        parts["mode"] = gr.Radio(modes, value=modes[0], label="Mode",
                                 info="; ".join(f"{mode}: {help_text}" for mode, help_text in MODE_HELP.items()))
        with gr.Row():
            parts["strength"] = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Strength",
                                          info="0 keeps the input, 1 ignores it")
            parts["start"] = gr.Number(value=1.0, minimum=0, label="Region start (s)", visible=False)
            parts["end"] = gr.Number(value=2.0, minimum=0, label="Region end (s)", visible=False)
            parts["extend"] = gr.Number(value=5.0, minimum=0, maximum=limits.max_seconds, label="Continue by (s)",
                                        visible=False)
        text_model = is_text_model(studio, default_model)
        with gr.Row():
            parts["prompt"] = gr.Textbox(label="Prompt (text models, optional)", visible=text_model)
            parts["negative"] = gr.Textbox(label="Negative prompt (text models)", visible=text_model)
        parts |= seed_controls()
        with gr.Accordion("Sampler", open=False), gr.Row():
            parts["steps"] = gr.Slider(1, limits.max_steps, value=20, step=1, label="Steps")
            parts["guidance"] = gr.Slider(0.0, 15.0, value=3.0, step=0.5, label="Guidance scale (text models)")
            parts["scheduler"] = gr.Dropdown(SCHEDULER_CHOICES, value="model default", label="Scheduler")
        with gr.Row():
            generate = gr.Button("Generate", variant="primary", scale=4, elem_id="audio-generate")
            stop = gr.Button("Stop", variant="stop", scale=1)
        status = gr.Markdown(elem_classes="job-status")
        with gr.Row():
            in_picture = spectrogram("Input mel spectrogram")
            out_picture = spectrogram("Output mel spectrogram")
        output = gr.Audio(label="Output", type="filepath", interactive=False, elem_id="audio-output")
        send = gr.Button("Use this output as the input", size="sm")
    return Tab(parts, [parts["seed"], status, in_picture, out_picture, output], generate, stop, status,
               sends=[(send, output)])


def wire_send_buttons(sends: list[tuple[gr.Button, gr.Audio]], tab: Tab) -> None:
    """Each send button puts its player's file into this tab's input, then shows this tab."""

    def send_to_audio(path):
        if not path:
            raise gr.Error("Nothing to send yet: generate first.")
        return path

    for send, player in sends:
        send.click(send_to_audio, player, tab.parts["audio"], api_visibility="private").then(
            None, None, None, js=SHOW_AUDIO_TAB_JS)


def wire_audio_job(tab: Tab, studio: Studio, wrap: Callable[[Callable], Callable], queue: dict) -> None:
    """Generate runs `Studio.audio_to_audio` (wrapped by `wrap`) in the Audio queue."""

    @wrap
    def run_audio(model, audio, mode, strength, prompt, negative, start, end, extend, steps, scheduler, guidance,
                  seed, randomize, progress=gr.Progress()):  # noqa: B008 (how Gradio asks for a progress bar)
        result = studio.audio_to_audio(model, audio, mode, strength, prompt, negative, start, end, extend, steps,
                                       scheduler, guidance, seed, randomize, progress=progress)
        output = result.outputs[0]
        return [result.seed, result.status, result.input_spectrogram, output.spectrogram, str(output.audio_path)]

    wire_job(tab, run_audio, "ui_audio_to_audio", queue)


def wire_audio_controls(tab: Tab, studio: Studio) -> None:
    """The picked model's info line, prompt boxes and modes; each mode's own settings."""
    parts = tab.parts

    def on_audio_model(label, mode):
        visible = is_text_model(studio, label)
        modes = studio.model_offers(label)[0]
        return (model_info(studio, label), gr.update(visible=visible), gr.update(visible=visible),
                gr.update(choices=modes, value=mode if mode in modes else modes[0]))

    parts["model"].change(on_audio_model, [parts["model"], parts["mode"]],
                          [parts["model_info"], parts["prompt"], parts["negative"], parts["mode"]],
                          api_visibility="private")

    def on_audio_mode(mode):
        regions = mode in ("inpaint region", "outpaint around region")
        return (gr.update(visible=mode != "continue"), gr.update(visible=regions), gr.update(visible=regions),
                gr.update(visible=mode == "continue"))

    parts["mode"].change(on_audio_mode, parts["mode"], [parts["strength"], parts["start"], parts["end"],
                                                      parts["extend"]], api_visibility="private")
