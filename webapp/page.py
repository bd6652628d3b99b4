"""The studio's page: the Gradio Blocks with its header and four tabs (one builder each in `webapp/tabs/`),
a queue and a Stop button per tab, the named API (`webapp/api.py`) and the experimenter's page."""
from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from webapp.api import GENERATION_ENDPOINTS, register_api
from webapp.checks import name_bad_values
from webapp.handlers import Studio
from webapp.jobs import WorkerSlots, as_job
from webapp.tabs.audio import build_audio_tab, wire_audio_controls, wire_audio_job, wire_send_buttons
from webapp.tabs.experimenter import build_experimenter_page
from webapp.tabs.listening import build_listening_tab, wire_listening_job
from webapp.tabs.loops import build_loops_tab, wire_loops_controls, wire_loops_job
from webapp.tabs.models import build_header, wire_rescan
from webapp.tabs.text import build_text_tab, wire_text_controls, wire_text_job

# Seconds a ZeroGPU Space reserves the GPU for one click.
GPU_SECONDS = 120
CSS = """
.slot-title p { margin: 0; }
.job-status { min-height: 4.5em; }
#studio-banner { font-size: 0.9em; }
"""
# The queue (tab) each generation endpoint of the API shares with its tab's button.
ENDPOINT_QUEUES = {"loops": "loops", "text_to_audio": "text", "audio_to_audio": "audio", "listening_next": "listening"}
# Components whose raw API values are checked, with an error naming the field.
CHECKED_COMPONENTS = (gr.Number, gr.Slider, gr.Dropdown, gr.Radio, gr.Checkbox, gr.Textbox)


def on_gpu(function: Callable) -> Callable:
    """`spaces.GPU` around a generation handler on ZeroGPU Spaces (where `spaces` is importable)."""
    try:
        import spaces
    except ImportError:
        return function
    return spaces.GPU(duration=GPU_SECONDS)(function)


def build_page(studio: Studio, concurrency: int = 1, slots: WorkerSlots | None = None,
               delete_cache: tuple[int, int] | None = None) -> gr.Blocks:
    """The page.

    Args:
        concurrency: generations running at once per tab (each tab has its own queue).
        slots: generations running at once across all tabs (None: no shared limit).
        delete_cache: Gradio's `(every, older_than)` in seconds for its temporary files.
    """
    job = as_job(slots)

    def wrap(function: Callable) -> Callable:
        """Every generation handler, the tabs' and the API's: a worker slot, and the GPU on a Space."""
        return job(on_gpu(function))

    def queue(tab: str) -> dict:
        """One queue per tab, so a long text job does not hold up the Loops tab."""
        return {"concurrency_limit": concurrency, "concurrency_id": tab}

    with gr.Blocks(title="Diffusion music studio", delete_cache=delete_cache) as demo:
        # 1. Layout: the header, then the tabs.
        banner = build_header(studio)
        loops, text, audio = build_loops_tab(studio), build_text_tab(studio), build_audio_tab(studio)
        listening = build_listening_tab()

        # 2. Jobs: each tab's button in its own queue, with its Stop button; clips go to audio to audio.
        wire_loops_job(loops, studio, wrap, queue("loops"))
        wire_text_job(text, studio, wrap, queue("text"))
        wire_send_buttons([*loops.sends, *text.sends, *audio.sends], audio)
        wire_audio_job(audio, studio, wrap, queue("audio"))
        wire_listening_job(listening, studio, wrap, queue("listening"))

        # 3. Controls that follow the picked model.
        wire_loops_controls(loops, studio)
        wire_text_controls(text, studio)
        wire_audio_controls(audio, studio)
        wire_rescan(studio, loops.parts["rescan"], banner, [tab.parts["model"] for tab in (loops, text, audio)])

        # 4. API: named endpoints with structured results, apart from the layout (webapp/api.py).
        register_api(studio, wrap=wrap, queue_options={name: queue(ENDPOINT_QUEUES[name])
                                                       for name in GENERATION_ENDPOINTS})
        for block in demo.blocks.values():  # bad raw API values get an error naming the field
            if isinstance(block, CHECKED_COMPONENTS):
                name_bad_values(block)
    with demo.route("Experimenter", "experimenter", show_in_navbar=False):
        build_experimenter_page(studio)
    return demo
