"""The studio's entry point (`python app.py`, and the Hugging Face Space's `app_file`): parse the flags,
build the studio and its page (`webapp.page`), launch.

The page's layout is in `webapp/page.py` and `webapp/tabs/`; what each button does is in `webapp/`
(plain, tested functions).
"""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import gradio as gr
import torch

from studio.budget import DEFAULT_MAX_OUTPUT_MB, default_max_work
from studio.outputs import OutputStore
from studio.trials import MIN_KEY_CHARS, AnswerLog
from webapp.handlers import Studio, StudioLimits
from webapp.jobs import (
    ABANDONED_AFTER_S,
    CLIENT_QUEUE,
    RESULT_STREAMS,
    WorkerSlots,
    default_max_sessions,
    default_parallel_jobs,
    default_torch_threads,
    queue_share_middleware,
)
from webapp.page import CSS, build_page
from webapp.registry import HUB_MODELS, ModelRegistry, default_model_dirs
from webapp.uploads import UploadLimits, upload_middleware

ROOT = Path(__file__).resolve().parent
ON_SPACE = bool(os.environ.get("SPACE_ID"))


def build_parser() -> argparse.ArgumentParser:
    """The command line, every flag with its help."""
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
                             "/listening_results), at least 12 characters; default: $LISTENING_TEST_KEY, else a random "
                             "key printed at start-up. Listeners never see results; wrong keys are rate-limited")
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
    parser.add_argument("--max-output-mb", type=float, default=DEFAULT_MAX_OUTPUT_MB,
                        help="most MB of files one request may write (its clips, loops and their zip, at the "
                             "export rate, channels and bit depth asked); larger requests are refused with what "
                             "to reduce (default %(default)s)")
    parser.add_argument("--max-upload-mb", type=float, default=50.0,
                        help="largest upload accepted, in MB (default %(default)s)")
    parser.add_argument("--client-uploads", type=int, default=UploadLimits.client_uploads,
                        help="uploads one client (address) may make in 10 minutes (default %(default)s)")
    parser.add_argument("--client-upload-mb", type=float, default=UploadLimits.client_mb,
                        help="MB one client may upload in 10 minutes (default %(default)s)")
    parser.add_argument("--total-upload-mb", type=float, default=UploadLimits.total_mb,
                        help="MB all clients together may upload in 10 minutes; more is refused with HTTP 429 "
                             "and when to try again (default %(default)s)")
    parser.add_argument("--temp-max-age", type=float, default=30.0,
                        help="minutes Gradio's temporary copies of uploads and outputs are kept "
                             "(default %(default)s)")
    parser.add_argument("--abandoned-call-s", type=float, default=ABANDONED_AFTER_S,
                        help="seconds a REST call (POST /gradio_api/call/<endpoint>) may wait for its caller to "
                             "open the result stream; then it is cancelled, or never started (default %(default)s)")
    parser.add_argument("--client-queue", type=int, default=CLIENT_QUEUE,
                        help="requests one client (address) may have waiting or running at once; more get HTTP "
                             "429, so one client cannot fill the 64-place queue (default %(default)s)")
    parser.add_argument("--max-sessions", type=int, default=default_max_sessions(),
                        help="sessions whose state the server keeps (about 0.4 MB each; the least recently used "
                             "are dropped beyond it; default %(default)s: 5%% of this machine's memory)")
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
    return parser


def check_device(device: str) -> str | None:
    """Why `--device` cannot be used here (one line), or None: auto, cpu, cuda or cuda:N with CUDA present."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        return f"--device must be auto, cpu, cuda or cuda:N, got {device[:40]!r}"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return (f"--device {device}: this torch build has no CUDA or no GPU is visible "
                    f"(torch {torch.__version__}); use --device cpu or auto")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            return f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s), numbered from 0"
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags of `argv` (default: the command line); a bad value exits with one line naming it."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for hub_id in args.allow_hub_model:
        if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", hub_id) or len(hub_id) > 96:
            parser.error(f"--allow-hub-model takes a hub id like 'owner/name', got {hub_id!r}")
    for flag in ("concurrency", "threads", "max_steps", "max_sessions", "client_uploads", "client_queue"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    for flag in ("max_parallel", "max_work"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    if args.listening_key and len(args.listening_key) < MIN_KEY_CHARS:
        parser.error(f"--listening-key (or $LISTENING_TEST_KEY) must be at least {MIN_KEY_CHARS} characters, "
                     f"got {len(args.listening_key)}: a short key can be guessed")
    if args.abandoned_call_s <= 0:
        parser.error(f"--abandoned-call-s must be positive, got {args.abandoned_call_s}")
    device_error = check_device(args.device)
    if device_error:
        parser.error(device_error)
    if min(args.max_upload_mb, args.temp_max_age, args.client_upload_mb, args.total_upload_mb) <= 0 \
            or not 0 < args.max_output_mb < 1e9:
        parser.error("--max-upload-mb, --client-upload-mb, --total-upload-mb, --max-output-mb and --temp-max-age "
                     "must be positive")
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
                          max_work=args.max_work or default_max_work(args.device),
                          max_output_mb=args.max_output_mb)
    answers = AnswerLog(Path(args.output_dir) / "listening_test" / "answers.csv")
    return Studio(registry, store, limits, answers, real_dir=args.real_dir, results_key=args.listening_key)


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
    RESULT_STREAMS.abandon_after_s = args.abandoned_call_s
    studio = build_studio(args)
    if args.preload:
        preload(studio)
    parallel = args.max_parallel or default_parallel_jobs(args.threads, args.device)
    age = round(args.temp_max_age * 60)
    demo = build_page(studio, concurrency=args.concurrency, slots=WorkerSlots(parallel),
                      delete_cache=(max(60, age // 4), age))
    # Waiting requests beyond max_size are turned away with a "queue full" message, not left hanging.
    demo.queue(default_concurrency_limit=args.concurrency, max_size=64)
    return demo, studio


def launch_options(args: argparse.Namespace, studio: Studio) -> dict:
    """`demo.launch` keyword arguments: address, sharing, look, and the output folder served."""
    return {"server_name": args.host, "server_port": args.port, "share": args.share,
            "allowed_paths": [str(studio.store.root)], "theme": gr.themes.Soft(), "css": CSS,
            "max_file_size": round(args.max_upload_mb * 1024 * 1024),
            # Each session keeps a copy of the page's config: a cap bounds the memory cheap calls can take.
            "state_session_capacity": args.max_sessions,
            # Listeners' names and answers are the experimenter's only (see Studio.listening_results).
            "blocked_paths": [str(studio.answers.path.parent)],
            "app_kwargs": {"middleware": middleware(args)}}


def middleware(args: argparse.Namespace) -> list:
    """The HTTP layer's bounds (`webapp/jobs.py`, `webapp/uploads.py`): which REST result streams are
    opened (a call nobody reads is cancelled), requests per client in the queue, and uploads per client
    and in total within 10 minutes (HTTP 429 beyond)."""
    uploads = UploadLimits(args.client_uploads, args.client_upload_mb, args.total_upload_mb)
    return [RESULT_STREAMS.middleware(), queue_share_middleware(args.client_queue),
            upload_middleware(uploads, round(args.max_upload_mb * 1024 * 1024))]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    demo, studio = create(args)
    if not args.listening_key:
        print(f"Listening-test experimenter key (results and settings at /experimenter): {studio.results_key}")
    demo.launch(**launch_options(args, studio))


if __name__ == "__main__":
    main()
