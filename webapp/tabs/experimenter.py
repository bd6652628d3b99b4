"""The listening test's experimenter page (`/experimenter`, not linked from the listeners' page): what
listeners compare, and their answers, both behind the experimenter key."""
from __future__ import annotations

import gradio as gr

from studio.trials import summary_markdown
from webapp.handlers import Studio


def build_experimenter_page(studio: Studio) -> None:
    """The page's layout and wiring (call inside `demo.route(...)`): the key, the settings listeners get,
    the results."""
    registry, limits = studio.registry, studio.limits
    settings = studio.listening_settings()
    modes = studio.listening_defaults()["modes"]
    gr.Markdown("# Listening test: experimenter\nChoose what listeners compare and read their answers. Both need "
                "the key given with `--listening-key` (or printed when the app started). Listeners use the "
                "*Listening test* tab of the main page and never see results.")
    key = gr.Textbox(label="Experimenter key", type="password", elem_id="experimenter-key")
    with gr.Accordion("What listeners compare", open=True):
        with gr.Row():
            mode = gr.Radio(modes, value=settings["mode"], label="Compare",
                            info=f"generated vs real needs real clips: {len(studio.real_clips())} found")
            model_a = gr.Dropdown(registry.labels(), value=settings["model_a"], label="Checkpoint 1",
                                  allow_custom_value=registry.allow_custom)
            model_b = gr.Dropdown(registry.labels(), value=settings["model_b"], label="Checkpoint 2",
                                  allow_custom_value=registry.allow_custom,
                                  visible=settings["mode"] == "two checkpoints")
        with gr.Row():
            steps = gr.Slider(1, limits.max_steps, value=settings["steps"], step=1, label="Steps")
            seconds = gr.Number(value=settings["seconds"], minimum=0, maximum=limits.max_seconds,
                                label="Clip length (s; 0 = two bars at the prompt's tempo, or one window)")
            vocoder = gr.Checkbox(value=settings["vocoder_matched"], label="Vocoder-matched real clips (mel models)",
                                  visible=settings["mode"] == "generated vs real")
        prompt = gr.Textbox(label="Prompt for text models (empty: each real clip's caption, or a caption the "
                                  "models were trained on)", value=settings["prompt"])
        save = gr.Button("Save settings", variant="primary")
        saved = gr.Markdown()
    with gr.Accordion("Results", open=True):
        show = gr.Button("Show results")
        summary = gr.Markdown()
        answers_file = gr.File(label="Answers (CSV)", interactive=False)

    def on_mode(value):
        return gr.update(visible=value == "two checkpoints"), gr.update(visible=value == "generated vs real")

    mode.change(on_mode, mode, [model_b, vocoder], api_visibility="private")
    save.click(studio.set_listening_settings, [key, mode, model_a, model_b, steps, seconds, prompt, vocoder], saved,
               api_visibility="private")

    def show_results(given_key, http: gr.Request):
        summaries, path = studio.listening_results(given_key, http)
        return summary_markdown(summaries), None if path is None else str(path)

    show.click(show_results, key, [summary, answers_file], api_visibility="private")
