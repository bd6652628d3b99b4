"""Controls the tabs share: seed, key and export controls, spectrogram pictures, output slots and how a
result fills them, and the Generate/Stop pair that every generation tab wires the same way."""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import gradio as gr

from webapp.handlers import (
    EXPORT_CHANNEL_CHOICES,
    EXPORT_FORMAT_CHOICES,
    EXPORT_RATE_CHOICES,
    KEY_CHOICES,
    PROMPT_KEY,
    Result,
)

# Output slots per tab (variations / outputs per click); hidden ones are shown as needed.
SLOTS = 4


@dataclass
class Tab:
    """One tab's components.

    Attributes:
        parts: every component other wiring needs, by name; a generation's inputs are picked from it by
            the names of its handler's parameters (`inputs_for`), so their order is written once.
        outputs: the components the tab's handler fills, in the order it returns their values.
        generate, stop, status: the job's button, its Stop button and the status line its progress shows on.
        sends: (button, the player whose file it sends) for each "Send to audio to audio" button.
    """

    parts: dict[str, gr.components.Component]
    outputs: list[gr.components.Component]
    generate: gr.Button
    stop: gr.Button
    status: gr.Markdown
    sends: list[tuple[gr.Button, gr.Audio]] = field(default_factory=list)


def inputs_for(function: Callable, parts: dict[str, gr.components.Component]) -> list[gr.components.Component]:
    """The components feeding `function`, in the order of its parameters (its `gr.Progress` one left out:
    Gradio passes that itself)."""
    parameters = inspect.signature(function).parameters.values()
    return [parts[parameter.name] for parameter in parameters if not isinstance(parameter.default, gr.Progress)]


def wire_job(tab: Tab, run: Callable, api_name: str, queue: dict) -> gr.events.Dependency:
    """`tab.generate` runs `run` in the tab's queue with its progress on the status line; Stop cancels it."""
    event = tab.generate.click(run, inputs_for(run, tab.parts), tab.outputs, api_name=api_name,
                               api_visibility="private", show_progress_on=tab.status, **queue)
    tab.stop.click(None, None, None, cancels=[event], api_visibility="private")
    return event


def spectrogram(label: str = "Mel spectrogram") -> gr.Image:
    return gr.Image(label=label, type="pil", interactive=False, height=180, format="png")


def seed_controls(label: str = "Seed") -> dict[str, gr.components.Component]:
    """`seed` (a text box, empty for random) and `randomize` (the "Random seed" tick), kept consistent."""
    with gr.Row():
        # A text box, not a number field: a number field shows 0 when empty, which reads as "seed 0".
        seed = gr.Textbox(label=label, value="", placeholder="random", max_lines=1,
                          info="empty while 'Random seed' is ticked; the seed used is shown after each run")
        randomize = gr.Checkbox(label="Random seed", value=True)
    # Typing a seed means "use this one"; ticking random again empties the field.
    seed.input(lambda: False, None, randomize, api_visibility="private")
    randomize.input(lambda random_seed, value: "" if random_seed else value, [randomize, seed], seed,
                    api_visibility="private")
    return {"seed": seed, "randomize": randomize}


def key_and_export_controls(prefix: str) -> dict[str, gr.components.Component]:
    """Target `key` (in view) and the export settings `rate`, `channels`, `file_format` (in an accordion)
    of the Loops and Text tabs."""
    key = gr.Dropdown(KEY_CHOICES, value=PROMPT_KEY, label="Key", allow_custom_value=True,
                      info="estimate each clip's key and pitch-shift it by the smallest interval to this one "
                           "(only when the estimate is clear); 'from the prompt': the key the prompt names",
                      elem_id=f"{prefix}-key")
    with gr.Accordion("Export (sample rate, channels, format)", open=False), gr.Row():
        rate = gr.Dropdown(EXPORT_RATE_CHOICES, value=EXPORT_RATE_CHOICES[0], label="Sample rate (Hz)",
                           info="resampled with soxr", elem_id=f"{prefix}-export-rate")
        channels = gr.Radio(EXPORT_CHANNEL_CHOICES, value=EXPORT_CHANNEL_CHOICES[0], label="Channels")
        file_format = gr.Dropdown(EXPORT_FORMAT_CHOICES, value=EXPORT_FORMAT_CHOICES[0], label="Format",
                                  info="WAV keeps smpl loop points and the acid tempo; all formats carry "
                                       "the settings")
    return {"key": key, "rate": rate, "channels": channels, "file_format": file_format}


def output_slots(prefix: str, label: str, with_loops: bool) -> tuple[list, list[tuple[gr.Button, gr.Audio]]]:
    """`SLOTS` hidden panels, each a title, a player (`{label} n`), its spectrogram, with loops a row with
    the tiled loop and its file, and a "Send to audio to audio" button.

    Returns:
        (the components in the order `slot_updates` fills them, the send buttons with their players).
    """
    slots: list = []
    sends: list[tuple[gr.Button, gr.Audio]] = []
    for index in range(SLOTS):
        with gr.Column(visible=False, variant="panel") as column:
            title = gr.Markdown(elem_classes="slot-title")
            with gr.Row():
                clip = gr.Audio(label=f"{label} {index + 1}", type="filepath", interactive=False,
                                elem_id=f"{prefix}-clip-{index}")
                picture = spectrogram()
            slots += [column, title, clip, picture]
            if with_loops:
                with gr.Row(visible=False) as loop_row:
                    loop_player = gr.Audio(label="Seamless loop (tiled)", type="filepath", interactive=False,
                                           loop=True)
                    loop_file = gr.File(label="Loop file (WAV: smpl loop points and acid tempo)",
                                        interactive=False, elem_id=f"{prefix}-file-{index}")
                slots += [loop_row, loop_player, loop_file]
            send = gr.Button("Send to audio to audio", size="sm")
        sends.append((send, clip))
    return slots, sends


def slot_updates(result: Result, with_loops: bool) -> list:
    """Per output slot: visibility, caption, player, spectrogram (and the loop row's visibility, loop
    player and loop WAV). Visibility goes to layout blocks, which the API leaves out: API callers get
    plain values."""
    updates: list = []
    for index in range(SLOTS):
        if index < len(result.outputs):
            output = result.outputs[index]
            info = output.loop_info if with_loops else output.key_info
            caption = f"**{output.title}**" + (f"  \n{info}" if info else "")
            updates += [gr.update(visible=True), caption, str(output.audio_path), output.spectrogram]
            if with_loops:
                loop = None if output.loop_path is None else str(output.loop_path)
                updates += [gr.update(visible=loop is not None), loop, loop]
        else:
            updates += [gr.update(visible=False), "", None, None] + (
                [gr.update(visible=False), None, None] if with_loops else [])
    return updates


def zip_file(result: Result) -> str | None:
    """The path of the result's zip of every output, for a `gr.File`."""
    return None if result.zip_path is None else str(result.zip_path)
