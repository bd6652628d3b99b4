"""The page's model parts: the title and the banner of checkpoints found, each picker's info line, and
the Rescan button that searches the model folders again."""
from __future__ import annotations

import gradio as gr

from webapp.handlers import Studio


def build_header(studio: Studio) -> gr.Markdown:
    """The title and what the page offers; returns the banner of checkpoints found (Rescan rewrites it)."""
    gr.Markdown("# Diffusion music studio\nLoops, text to audio and audio to audio with mel-spectrogram "
                "diffusion models, and a blind listening test. Every output has a download button and "
                "carries its settings (model, seed, steps...) in its file name and WAV metadata.")
    return gr.Markdown(studio.registry.status_markdown(), elem_id="studio-banner")


def model_info(studio: Studio, label: str | None) -> str:
    """The picked model's line under a picker: its name, kind and capabilities (or why it cannot load)."""
    if not label:
        return ""
    try:
        choice = studio.registry.resolve(label)
    except gr.Error as error:
        return f"⚠️ {error.message}"
    kind = {True: "text model", False: "unconditional (no prompt)", None: "loaded on first use"}[
        choice.text_conditioned]
    return f"`{choice.name}` · {kind}  \n{studio.model_capabilities(label)}"


def steps_slider(studio: Studio, label: str | None) -> gr.Slider:
    """The Steps slider, at the picked model's own default when it is loaded (else 0: the model's default,
    resolved when the request runs); picking a model sets it to that model's default."""
    return gr.Slider(0, studio.limits.max_steps, value=studio.model_default_steps(label, load=False), step=1,
                     label="Steps", info="0 = the model's own default")


def is_text_model(studio: Studio, label: str | None) -> bool:
    """Whether the picked model may take a prompt (text models, and typed-in ones not loaded yet)."""
    try:
        return studio.registry.resolve(label).text_conditioned is not False
    except gr.Error:
        return False


def wire_rescan(studio: Studio, rescan: gr.Button, banner: gr.Markdown, pickers: list[gr.Dropdown]) -> None:
    """Rescan refreshes the banner and the (loops, text, audio) pickers' choices."""
    registry = studio.registry

    def rescan_models():
        """Search the model folders again (new checkpoints from training appear)."""
        registry.refresh()
        return [registry.status_markdown(), gr.update(choices=registry.labels(needs_text=False)),
                gr.update(choices=registry.labels(needs_text=True)), gr.update(choices=registry.labels())]

    rescan.click(rescan_models, None, [banner, *pickers], api_name="ui_rescan_models", api_visibility="private")
