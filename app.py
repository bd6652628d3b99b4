"""The studio's web page: a Gradio Blocks app with four tabs (loops, text to audio, audio to audio,
blind listening test) that runs locally (`python app.py`) and as a Hugging Face Space.

Layout and wiring only: what each button does lives in `webapp/` (plain, tested functions).
"""
from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import torch

from studio.budget import default_max_work
from studio.outputs import OutputStore
from studio.trials import PROTOCOL, AnswerLog, summary_markdown
from webapp.api import GENERATION_ENDPOINTS, register_api
from webapp.checks import name_bad_values
from webapp.handlers import (
    EXPORT_CHANNEL_CHOICES,
    EXPORT_FORMAT_CHOICES,
    EXPORT_RATE_CHOICES,
    KEY_CHOICES,
    MODE_HELP,
    NO_KEY,
    SCHEDULER_CHOICES,
    Result,
    Studio,
    StudioLimits,
)
from webapp.jobs import WorkerSlots, as_job, default_parallel_jobs, default_torch_threads
from webapp.registry import HUB_MODELS, ModelRegistry, default_model_dirs

ROOT = Path(__file__).resolve().parent
ON_SPACE = bool(os.environ.get("SPACE_ID"))
# Output slots per tab (variations / outputs per click); hidden ones are shown as needed.
SLOTS = 4
# Seconds a ZeroGPU Space reserves the GPU for one click.
GPU_SECONDS = 120
CSS = """
.slot-title p { margin: 0; }
.job-status { min-height: 4.5em; }
#studio-banner { font-size: 0.9em; }
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Diffusion music studio: loops, text to audio, audio to audio and a blind listening test.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (0.0.0.0 for every interface; default %(default)s)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                        help="port to listen on (default %(default)s)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument("--model-dir", default=None,
                        help="folder searched for checkpoint folders (any folder with a model_index.json, "
                             "e.g. training output); default: runs/ when it exists")
    parser.add_argument("--checkpoints-dir", default=str(ROOT / "checkpoints"),
                        help="the bundled checkpoints (default %(default)s)")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA in half precision when present, else CPU), cpu, cuda or cuda:N")
    parser.add_argument("--real-dir", default=str(ROOT / "data" / "corpus" / "test"),
                        help="real clips for the listening test (default %(default)s)")
    parser.add_argument("--listening-key", default=os.environ.get("LISTENING_TEST_KEY"),
                        help="the experimenter's key to the listening-test results (the Experimenter page and "
                             "/listening_results); default: $LISTENING_TEST_KEY, else a random key printed at "
                             "start-up. Listeners never see results")
    parser.add_argument("--output-dir", default=str(ROOT / "outputs" / "app"),
                        help="where generated files and listening-test answers go (default %(default)s)")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="generations run at once per tab (each tab has its own queue); more wait in "
                             "that tab's queue (default %(default)s)")
    parser.add_argument("--max-parallel", type=int, default=None,
                        help="generations run at once across all tabs (default: CPU cores / --threads, "
                             "1 to 4, on CPU; 2 on a GPU)")
    parser.add_argument("--threads", type=int, default=default_torch_threads(),
                        help="torch CPU threads (default %(default)s: measured fastest on small, busy "
                             "machines, see benchmarks/bench_threads.py and docs/app.md)")
    parser.add_argument("--max-work", type=int, default=None,
                        help="compute budget of one request, in clips x model windows x denoising steps; "
                             "larger requests are refused with what to reduce (default: "
                             "600 on CPU, 6000 on a GPU)")
    parser.add_argument("--max-upload-mb", type=float, default=50.0,
                        help="largest upload accepted, in MB (default %(default)s)")
    parser.add_argument("--temp-max-age", type=float, default=120.0,
                        help="minutes Gradio's temporary copies of uploads and outputs are kept "
                             "(default %(default)s)")
    parser.add_argument("--keep-outputs", type=int, default=2000,
                        help="newest generated WAVs kept in --output-dir; older ones are deleted "
                             "(default %(default)s)")
    parser.add_argument("--keep-output-mb", type=float, default=2000.0,
                        help="most MB of generated WAVs kept in --output-dir (default %(default)s)")
    parser.add_argument("--allow-hub-model", action="append", default=[], metavar="OWNER/NAME",
                        help="add a hub model id to the picker (repeatable); only listed models can be "
                             "loaded")
    parser.add_argument("--max-loaded-models", type=int, default=2,
                        help="pipelines kept in memory (default %(default)s)")
    parser.add_argument("--max-steps", type=int, default=StudioLimits.max_steps,
                        help="most denoising steps one request may ask for (default %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=StudioLimits.max_seconds,
                        help="longest clip or continuation one request may ask for, in s (default %(default)s)")
    parser.add_argument("--max-input-seconds", type=float, default=StudioLimits.max_input_seconds,
                        help="longest upload, in s (default %(default)s)")
    parser.add_argument("--custom-models", action=argparse.BooleanOptionalAction, default=False,
                        help="let users type any folder path or hub id into the model picker (default: "
                             "off; only for a trusted local user: it lets a visitor load any server "
                             "folder or download any hub repository)")
    parser.add_argument("--preload", action=argparse.BooleanOptionalAction, default=ON_SPACE,
                        help="load the default local checkpoints at start-up rather than on the first click "
                             "(default: off, on for a Space, where ZeroGPU wants models loaded at start-up)")
    args = parser.parse_args(argv)
    for hub_id in args.allow_hub_model:
        if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", hub_id) or len(hub_id) > 96:
            parser.error(f"--allow-hub-model takes a hub id like 'owner/name', got {hub_id!r}")
    for flag in ("concurrency", "threads", "max_steps"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    for flag in ("max_parallel", "max_work"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    if args.max_upload_mb <= 0 or args.temp_max_age <= 0:
        parser.error("--max-upload-mb and --temp-max-age must be positive")
    return args


def build_studio(args: argparse.Namespace) -> Studio:
    """The handlers, model registry and output folder the command line asks for."""
    hub_models = {**HUB_MODELS, **{hub_id: HUB_MODELS.get(hub_id) for hub_id in args.allow_hub_model}}
    registry = ModelRegistry(
        bundled_dir=args.checkpoints_dir, model_dirs=default_model_dirs(args.model_dir), device=args.device,
        hub_models=hub_models, max_loaded=args.max_loaded_models, allow_custom=args.custom_models,
    )
    store = OutputStore(args.output_dir, max_files=args.keep_outputs, max_megabytes=args.keep_output_mb)
    limits = StudioLimits(max_steps=args.max_steps, max_seconds=args.max_seconds,
                          max_input_seconds=args.max_input_seconds,
                          max_work=args.max_work or default_max_work(args.device))
    answers = AnswerLog(Path(args.output_dir) / "listening_test" / "answers.csv")
    return Studio(registry, store, limits, answers, real_dir=args.real_dir, results_key=args.listening_key)


def on_gpu(function: Callable) -> Callable:
    """`spaces.GPU` around a generation handler on ZeroGPU Spaces (where `spaces` is importable)."""
    try:
        import spaces
    except ImportError:
        return function
    return spaces.GPU(duration=GPU_SECONDS)(function)


def _spectrogram(label: str = "Mel spectrogram") -> gr.Image:
    return gr.Image(label=label, type="pil", interactive=False, height=180, format="png")


def _seed_controls(label: str = "Seed") -> tuple[gr.Textbox, gr.Checkbox]:
    with gr.Row():
        # A text box, not a number field: a number field shows 0 when empty, which reads as "seed 0".
        seed = gr.Textbox(label=label, value="", placeholder="random", max_lines=1,
                          info="empty while 'Random seed' is ticked; the seed used is shown after each run")
        randomize = gr.Checkbox(label="Random seed", value=True)
    # Typing a seed means "use this one"; ticking random again empties the field.
    seed.input(lambda: False, None, randomize, api_visibility="private")
    randomize.input(lambda random_seed, value: "" if random_seed else value, [randomize, seed], seed,
                    api_visibility="private")
    return seed, randomize


def _key_and_export_controls(prefix: str) -> tuple[gr.Dropdown, gr.Dropdown, gr.Radio, gr.Dropdown]:
    """Target key (in view) and the export settings (in an accordion) of the Loops and Text tabs."""
    key = gr.Dropdown(KEY_CHOICES, value=NO_KEY, label="Key", allow_custom_value=True,
                      info="estimate each clip's key and pitch-shift it by the smallest interval to this one",
                      elem_id=f"{prefix}-key")
    with gr.Accordion("Export (sample rate, channels, format)", open=False), gr.Row():
        rate = gr.Dropdown(EXPORT_RATE_CHOICES, value=EXPORT_RATE_CHOICES[0], label="Sample rate (Hz)",
                           info="resampled with soxr", elem_id=f"{prefix}-export-rate")
        channels = gr.Radio(EXPORT_CHANNEL_CHOICES, value=EXPORT_CHANNEL_CHOICES[0], label="Channels")
        file_format = gr.Dropdown(EXPORT_FORMAT_CHOICES, value=EXPORT_FORMAT_CHOICES[0], label="Format",
                                  info="WAV keeps smpl loop points and the acid tempo; all formats carry "
                                       "the settings")
    return key, rate, channels, file_format


# Clicks the Audio to audio tab after a "Send to audio to audio" button filled its input.
SHOW_AUDIO_TAB_JS = ("() => { const tab = [...document.querySelectorAll('button[role=\"tab\"]')]"
                     ".find(button => button.textContent.trim() === 'Audio to audio'); if (tab) tab.click(); }")


def _slot_updates(result: Result, with_loops: bool) -> list:
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


def build_app(studio: Studio, concurrency: int = 1, slots: WorkerSlots | None = None,
              delete_cache: tuple[int, int] | None = None) -> gr.Blocks:
    """The page.

    Args:
        concurrency: generations running at once per tab (each tab has its own queue).
        slots: generations running at once across all tabs (None: no shared limit).
        delete_cache: Gradio's `(every, older_than)` in seconds for its temporary files.
    """
    registry, limits = studio.registry, studio.limits
    job = as_job(slots)

    def queue(tab: str) -> dict:
        """One queue per tab, so a long text job does not hold up the Loops tab."""
        return {"concurrency_limit": concurrency, "concurrency_id": tab}

    def model_info(label: str | None) -> str:
        if not label:
            return ""
        try:
            choice = registry.resolve(label)
        except gr.Error as error:
            return f"⚠️ {error.message}"
        kind = {True: "text model", False: "unconditional (no prompt)", None: "loaded on first use"}[
            choice.text_conditioned]
        return f"`{choice.name}` · {kind}  \n{studio.model_capabilities(label)}"

    def is_text_model(label: str | None) -> bool:
        """Whether the picked model may take a prompt (text models, and typed-in ones not loaded yet)."""
        try:
            return registry.resolve(label).text_conditioned is not False
        except gr.Error:
            return False

    with gr.Blocks(title="Diffusion music studio", delete_cache=delete_cache) as demo:
        gr.Markdown("# Diffusion music studio\nLoops, text to audio and audio to audio with mel-spectrogram "
                    "diffusion models, and a blind listening test. Every output has a download button and "
                    "carries its settings (model, seed, steps...) in its file name and WAV metadata.")
        banner = gr.Markdown(registry.status_markdown(), elem_id="studio-banner")

        # ---- Loops ---------------------------------------------------------------------------
        # Model pickers take any value, so every value reaches `ModelRegistry.resolve`, which loads only
        # the models it lists and answers everything else with one "unknown model" message.
        with gr.Tab("Loops", id="loops"):
            with gr.Row():
                loops_model = gr.Dropdown(registry.labels(needs_text=False), value=registry.default_label(False),
                                          label="Model", allow_custom_value=True, scale=4,
                                          elem_id="loops-model")
                rescan = gr.Button("Rescan models", scale=1, size="sm")
            loops_model_info = gr.Markdown(model_info(registry.default_label(False)))
            loops_prompt = gr.Textbox(label="Prompt (text models)", placeholder="funk drum loop, 100 BPM",
                                      visible=is_text_model(registry.default_label(False)))
            with gr.Row():
                loops_variations = gr.Slider(1, limits.max_outputs, value=2, step=1, label="Variations")
                loops_repeats = gr.Slider(1, limits.max_repeats, value=4, step=1, label="Repeats in the loop file")
            loops_seed, loops_randomize = _seed_controls()
            with gr.Accordion("Sampler", open=False):
                with gr.Row():
                    loops_steps = gr.Slider(1, limits.max_steps, value=20, step=1, label="Steps")
                    loops_scheduler = gr.Dropdown(SCHEDULER_CHOICES, value="model default", label="Scheduler")
                with gr.Row():
                    loops_seconds = gr.Number(value=0, minimum=0, maximum=limits.max_seconds,
                                              label="Clip length (s; 0 = two bars at the tempo; else at least one "
                                                    "bar: 2 s at 120 BPM)")
            with gr.Row():
                loops_bpm = gr.Number(value=0, minimum=0, maximum=300, elem_id="loops-bpm",
                                      label="Tempo (BPM; 0 = the model's own tempo, or detected)")
                loops_key, loops_rate, loops_channels, loops_format = _key_and_export_controls("loops")
            with gr.Row():
                loops_button = gr.Button("Generate loops", variant="primary", elem_id="loops-generate", scale=4)
                loops_stop = gr.Button("Stop", variant="stop", elem_id="loops-stop", scale=1)
            loops_status = gr.Markdown(elem_id="loops-status", elem_classes="job-status")
            loops_slots: list = []
            send_buttons: list = []  # (button, the player whose file it sends)
            for index in range(SLOTS):
                with gr.Column(visible=False, variant="panel") as column:
                    title = gr.Markdown(elem_classes="slot-title")
                    with gr.Row():
                        clip = gr.Audio(label=f"Variation {index + 1}", type="filepath", interactive=False,
                                        elem_id=f"loops-clip-{index}")
                        picture = _spectrogram()
                    with gr.Row(visible=False) as loop_row:
                        loop_player = gr.Audio(label="Seamless loop (tiled)", type="filepath", interactive=False,
                                               loop=True)
                        loop_file = gr.File(label="Loop file (WAV: smpl loop points and acid tempo)",
                                            interactive=False, elem_id=f"loops-file-{index}")
                    send = gr.Button("Send to audio to audio", size="sm")
                loops_slots += [column, title, clip, picture, loop_row, loop_player, loop_file]
                send_buttons.append((send, clip))
            loops_zip = gr.File(label="All variations: one zip, a JSON of the settings beside each file",
                                interactive=False, elem_id="loops-zip")

        # ---- Text to audio -------------------------------------------------------------------
        with gr.Tab("Text to audio", id="text"):
            text_model = gr.Dropdown(registry.labels(needs_text=True), value=registry.default_label(True),
                                     label="Model (text models)", allow_custom_value=True)
            text_model_info = gr.Markdown(model_info(registry.default_label(True)))
            text_examples_now = studio.example_prompts(registry.default_label(True))
            text_prompt = gr.Textbox(label="Prompt", lines=2, elem_id="text-prompt",
                                     placeholder=(text_examples_now or ["a genre, instruments, a key and a tempo"])[0])
            # Captions the selected model was trained on: words it knows, in the order it heard them.
            text_examples = gr.Dataset(components=[text_prompt], samples=[[text] for text in text_examples_now],
                                       label="Example prompts from the model's training captions (click one)",
                                       visible=bool(text_examples_now), elem_id="text-examples")
            text_negative = gr.Textbox(label="Negative prompt", placeholder="distorted, noisy")
            with gr.Row():
                # The slider ends at the picked model's longest clip (its backend's capabilities).
                text_longest = studio.model_offers(registry.default_label(True), load=False)[1]
                text_seconds = gr.Slider(0.5, text_longest, value=min(5.0, text_longest), step=0.5,
                                         label="Duration (s)")
                text_start = gr.Number(value=0.0, minimum=0, label="Start offset in the piece (s)")
                text_outputs = gr.Slider(1, limits.max_outputs, value=1, step=1, label="Outputs")
            with gr.Row():
                text_bpm = gr.Number(value=0, minimum=0, maximum=300, elem_id="text-bpm",
                                     label="Tempo (BPM; 0 = the prompt's, else the model's own)")
                text_key, text_rate, text_channels, text_format = _key_and_export_controls("text")
            text_seed, text_randomize = _seed_controls()
            with gr.Accordion("Sampler", open=False), gr.Row():
                    text_steps = gr.Slider(1, limits.max_steps, value=20, step=1, label="Steps")
                    text_guidance = gr.Slider(0.0, 15.0, value=3.0, step=0.5, label="Guidance scale")
                    text_scheduler = gr.Dropdown(SCHEDULER_CHOICES, value="model default", label="Scheduler")
            with gr.Row():
                text_button = gr.Button("Generate", variant="primary", scale=4, elem_id="text-generate")
                text_stop = gr.Button("Stop", variant="stop", scale=1)
            text_status = gr.Markdown(elem_classes="job-status")
            text_slots: list = []
            for index in range(SLOTS):
                with gr.Column(visible=False, variant="panel") as column:
                    title = gr.Markdown(elem_classes="slot-title")
                    with gr.Row():
                        clip = gr.Audio(label=f"Output {index + 1}", type="filepath", interactive=False,
                                        elem_id=f"text-clip-{index}")
                        picture = _spectrogram()
                    send = gr.Button("Send to audio to audio", size="sm")
                text_slots += [column, title, clip, picture]
                send_buttons.append((send, clip))
            text_zip = gr.File(label="All outputs: one zip, a JSON of the settings beside each file",
                               interactive=False)

        # ---- Audio to audio ------------------------------------------------------------------
        with gr.Tab("Audio to audio", id="audio"):
            audio_model = gr.Dropdown(registry.labels(), value=registry.default_label(), label="Model",
                                      allow_custom_value=True)
            audio_model_info = gr.Markdown(model_info(registry.default_label()))
            audio_input = gr.Audio(label="Input: upload or record", sources=["upload", "microphone"],
                                   type="filepath", elem_id="audio-input")
            audio_modes_now = studio.model_offers(registry.default_label(), load=False)[0]  # the model's modes
            audio_mode = gr.Radio(audio_modes_now, value=audio_modes_now[0], label="Mode",
                                  info="; ".join(f"{mode}: {help_text}" for mode, help_text in MODE_HELP.items()))
            with gr.Row():
                audio_strength = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Strength",
                                           info="0 keeps the input, 1 ignores it")
                audio_region_start = gr.Number(value=1.0, minimum=0, label="Region start (s)", visible=False)
                audio_region_end = gr.Number(value=2.0, minimum=0, label="Region end (s)", visible=False)
                audio_extend = gr.Number(value=5.0, minimum=0, maximum=limits.max_seconds, label="Continue by (s)",
                                         visible=False)
            with gr.Row():
                audio_prompt = gr.Textbox(label="Prompt (text models, optional)",
                                          visible=is_text_model(registry.default_label()))
                audio_negative = gr.Textbox(label="Negative prompt (text models)",
                                            visible=is_text_model(registry.default_label()))
            audio_seed, audio_randomize = _seed_controls()
            with gr.Accordion("Sampler", open=False), gr.Row():
                    audio_steps = gr.Slider(1, limits.max_steps, value=20, step=1, label="Steps")
                    audio_guidance = gr.Slider(0.0, 15.0, value=3.0, step=0.5, label="Guidance scale (text models)")
                    audio_scheduler = gr.Dropdown(SCHEDULER_CHOICES, value="model default", label="Scheduler")
            with gr.Row():
                audio_button = gr.Button("Generate", variant="primary", scale=4, elem_id="audio-generate")
                audio_stop = gr.Button("Stop", variant="stop", scale=1)
            audio_status = gr.Markdown(elem_classes="job-status")
            with gr.Row():
                audio_in_picture = _spectrogram("Input mel spectrogram")
                audio_out_picture = _spectrogram("Output mel spectrogram")
            audio_output = gr.Audio(label="Output", type="filepath", interactive=False, elem_id="audio-output")
            audio_send = gr.Button("Use this output as the input", size="sm")

        # ---- Listening test ------------------------------------------------------------------
        with gr.Tab("Listening test", id="listening"):
            gr.Markdown(f"**{PROTOCOL['question']}** Press *Next pair*, listen to both clips, then answer. "
                        "Which system plays as A is drawn at random every time and the files carry no names "
                        "or metadata. The experimenter chooses what is compared and reads the results on a "
                        "separate page.")
            listen_listener = gr.Textbox(label="Listener (optional)", placeholder="your name or initials",
                                         max_length=80)
            with gr.Row():
                listen_next = gr.Button("Next pair", variant="primary", scale=4, elem_id="listen-next")
                listen_stop = gr.Button("Stop", variant="stop", scale=1)
            listen_status = gr.Markdown(elem_id="listen-status", elem_classes="job-status")
            with gr.Row():
                listen_a = gr.Audio(label="A", type="filepath", interactive=False, elem_id="listen-a")
                listen_b = gr.Audio(label="B", type="filepath", interactive=False, elem_id="listen-b")
            with gr.Row():
                answer_a = gr.Button("A is better", elem_id="answer-a")
                answer_same = gr.Button("Same / can't tell", elem_id="answer-same")
                answer_b = gr.Button("B is better", elem_id="answer-b")
            listen_trial = gr.State(None)

        # ---- Wiring ----------------------------------------------------------------------------
        @job
        @on_gpu
        def run_loops(model, variations, seed, randomize, steps, scheduler, repeats, seconds, bpm, prompt,
                      key=NO_KEY, rate="model rate", channels="as generated", file_format="WAV 16-bit",
                      progress=gr.Progress()):  # noqa: B008 (how Gradio asks for a progress bar)
            result = studio.generate_loops(model, variations, seed, randomize, steps, scheduler, repeats, seconds,
                                           bpm, prompt, key, rate, channels, file_format, progress=progress)
            zip_file = None if result.zip_path is None else str(result.zip_path)
            return [result.seed, result.status, *_slot_updates(result, with_loops=True), zip_file]

        loops_event = loops_button.click(
            run_loops,
            [loops_model, loops_variations, loops_seed, loops_randomize, loops_steps, loops_scheduler, loops_repeats,
             loops_seconds, loops_bpm, loops_prompt, loops_key, loops_rate, loops_channels, loops_format],
            [loops_seed, loops_status, *loops_slots, loops_zip], api_name="ui_loops", api_visibility="private",
            show_progress_on=loops_status, **queue("loops"),
        )
        loops_stop.click(None, None, None, cancels=[loops_event], api_visibility="private")

        @job
        @on_gpu
        def run_text(model, prompt, negative, seconds, start, guidance, steps, scheduler, seed, randomize, outputs,
                     bpm=0, key=NO_KEY, rate="model rate", channels="as generated", file_format="WAV 16-bit",
                     progress=gr.Progress()):  # noqa: B008 (how Gradio asks for a progress bar)
            result = studio.text_to_audio(model, prompt, negative, seconds, start, guidance, steps, scheduler, seed,
                                          randomize, outputs, bpm, key, rate, channels, file_format,
                                          progress=progress)
            zip_file = None if result.zip_path is None else str(result.zip_path)
            return [result.seed, result.status, *_slot_updates(result, with_loops=False), zip_file]

        text_event = text_button.click(
            run_text,
            [text_model, text_prompt, text_negative, text_seconds, text_start, text_guidance, text_steps,
             text_scheduler, text_seed, text_randomize, text_outputs, text_bpm, text_key, text_rate, text_channels,
             text_format],
            [text_seed, text_status, *text_slots, text_zip], api_name="ui_text_to_audio", api_visibility="private",
            show_progress_on=text_status, **queue("text"),
        )
        text_stop.click(None, None, None, cancels=[text_event], api_visibility="private")

        def send_to_audio(path):
            if not path:
                raise gr.Error("Nothing to send yet: generate first.")
            return path

        for send, player in [*send_buttons, (audio_send, audio_output)]:
            send.click(send_to_audio, player, audio_input, api_visibility="private").then(
                None, None, None, js=SHOW_AUDIO_TAB_JS)

        @job
        @on_gpu
        def run_audio(model, audio, mode, strength, prompt, negative, start, end, extend, steps, scheduler, guidance,
                      seed, randomize, progress=gr.Progress()):  # noqa: B008 (how Gradio asks for a progress bar)
            result = studio.audio_to_audio(model, audio, mode, strength, prompt, negative, start, end, extend, steps,
                                           scheduler, guidance, seed, randomize, progress=progress)
            output = result.outputs[0]
            return [result.seed, result.status, result.input_spectrogram, output.spectrogram, str(output.audio_path)]

        audio_event = audio_button.click(
            run_audio,
            [audio_model, audio_input, audio_mode, audio_strength, audio_prompt, audio_negative, audio_region_start,
             audio_region_end, audio_extend, audio_steps, audio_scheduler, audio_guidance, audio_seed,
             audio_randomize],
            [audio_seed, audio_status, audio_in_picture, audio_out_picture, audio_output],
            api_name="ui_audio_to_audio", api_visibility="private", show_progress_on=audio_status, **queue("audio"),
        )
        audio_stop.click(None, None, None, cancels=[audio_event], api_visibility="private")

        @job
        @on_gpu
        def run_next(progress=gr.Progress()):  # noqa: B008 (how Gradio asks for a progress bar)
            result = studio.listening_next(**studio.listening_settings(), progress=progress)
            return result.trial, result.clip_a, result.clip_b, result.status

        listen_event = listen_next.click(run_next, None, [listen_trial, listen_a, listen_b, listen_status],
                                         api_name="ui_listening_next", api_visibility="private",
                                         show_progress_on=listen_status, **queue("listening"))
        listen_stop.click(None, None, None, cancels=[listen_event], api_visibility="private")

        def answer_with(answer: str) -> Callable:
            def record(trial, listener):
                return studio.listening_answer(trial, answer, listener)

            return record

        for button, answer in ((answer_a, "A"), (answer_b, "B"), (answer_same, "same")):
            button.click(answer_with(answer), [listen_trial, listen_listener], [listen_trial, listen_status],
                         api_name=f"ui_listening_answer_{answer.lower()}", api_visibility="private")

        def on_loops_model(label):
            return model_info(label), gr.update(visible=is_text_model(label))

        loops_model.change(on_loops_model, loops_model, [loops_model_info, loops_prompt], api_visibility="private")
        def on_text_model(label, seconds):
            examples = studio.example_prompts(label)
            longest = studio.model_offers(label)[1]
            return (model_info(label), gr.Dataset(samples=[[text] for text in examples], visible=bool(examples)),
                    gr.update(placeholder=(examples or ["a genre, instruments, a key and a tempo"])[0]),
                    gr.update(maximum=longest, value=min(float(seconds or 5.0), longest)))

        text_model.change(on_text_model, [text_model, text_seconds],
                          [text_model_info, text_examples, text_prompt, text_seconds], api_visibility="private")
        text_examples.click(lambda sample: sample[0], text_examples, text_prompt, api_visibility="private")
        def on_audio_model(label, mode):
            visible = is_text_model(label)
            modes = studio.model_offers(label)[0]
            return (model_info(label), gr.update(visible=visible), gr.update(visible=visible),
                    gr.update(choices=modes, value=mode if mode in modes else modes[0]))

        audio_model.change(on_audio_model, [audio_model, audio_mode],
                           [audio_model_info, audio_prompt, audio_negative, audio_mode], api_visibility="private")

        def on_audio_mode(mode):
            regions = mode in ("inpaint region", "outpaint around region")
            return (gr.update(visible=mode != "continue"), gr.update(visible=regions), gr.update(visible=regions),
                    gr.update(visible=mode == "continue"))

        audio_mode.change(on_audio_mode, audio_mode, [audio_strength, audio_region_start, audio_region_end,
                                                     audio_extend], api_visibility="private")

        dropdowns = [loops_model, text_model, audio_model]

        def rescan_models():
            """Search the model folders again (new checkpoints from training appear)."""
            registry.refresh()
            return [registry.status_markdown(), gr.update(choices=registry.labels(needs_text=False)),
                    gr.update(choices=registry.labels(needs_text=True)), gr.update(choices=registry.labels())]

        rescan.click(rescan_models, None, [banner, *dropdowns], api_name="ui_rescan_models", api_visibility="private")

        # ---- API: named endpoints with structured results, apart from the layout (webapp/api.py) ----
        tab_of = {"loops": "loops", "text_to_audio": "text", "audio_to_audio": "audio", "listening_next": "listening"}
        register_api(studio, wrap=lambda function: job(on_gpu(function)),
                     queue_options={name: queue(tab_of[name]) for name in GENERATION_ENDPOINTS})
        for block in demo.blocks.values():  # bad raw API values get an error naming the field
            if isinstance(block, (gr.Number, gr.Slider, gr.Dropdown, gr.Radio, gr.Checkbox, gr.Textbox)):
                name_bad_values(block)
    with demo.route("Experimenter", "experimenter", show_in_navbar=False):
        build_experimenter_page(studio)
    return demo


def build_experimenter_page(studio: Studio) -> None:
    """The listening test's experimenter page (`/experimenter`, not linked from the listeners' page):
    what listeners compare, and the results, both behind the experimenter key."""
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

    def show_results(given_key):
        summaries, path = studio.listening_results(given_key)
        return summary_markdown(summaries), None if path is None else str(path)

    show.click(show_results, key, [summary, answers_file], api_visibility="private")


def preload(studio: Studio) -> None:
    """Load the default local checkpoints now; a failure is printed, and the app starts anyway."""
    registry = studio.registry
    labels = {registry.default_label(needs_text) for needs_text in (False, True)}
    for label in sorted(label for label in labels if label and registry.resolve(label).origin != "hub"):
        try:
            registry.load(label)
            print(f"Preloaded {label}")
        except gr.Error as error:
            print(f"Could not preload {label}: {error.message}")


def create(args: argparse.Namespace) -> tuple[gr.Blocks, Studio]:
    """The queued app and its handlers, as the command line asks."""
    torch.set_num_threads(args.threads)
    studio = build_studio(args)
    if args.preload:
        preload(studio)
    parallel = args.max_parallel or default_parallel_jobs(args.threads, args.device)
    age = round(args.temp_max_age * 60)
    demo = build_app(studio, concurrency=args.concurrency, slots=WorkerSlots(parallel),
                     delete_cache=(max(60, age // 4), age))
    # Waiting requests beyond max_size are turned away with a "queue full" message, not left hanging.
    demo.queue(default_concurrency_limit=args.concurrency, max_size=64)
    return demo, studio


def launch_options(args: argparse.Namespace, studio: Studio) -> dict:
    """`demo.launch` keyword arguments: address, sharing, look, and the output folder served."""
    return {"server_name": args.host, "server_port": args.port, "share": args.share,
            "allowed_paths": [str(studio.store.root)], "theme": gr.themes.Soft(), "css": CSS,
            "max_file_size": round(args.max_upload_mb * 1024 * 1024),
            # Listeners' names and answers are the experimenter's only (see Studio.listening_results).
            "blocked_paths": [str(studio.answers.path.parent)]}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    demo, studio = create(args)
    if not args.listening_key:
        print(f"Listening-test experimenter key (results and settings at /experimenter): {studio.results_key}")
    demo.launch(**launch_options(args, studio))


if __name__ == "__main__":
    main()
