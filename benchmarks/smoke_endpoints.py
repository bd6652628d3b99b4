"""Smoke test of every endpoint of the real app, on the device it will serve from: `python app.py` with the
bundled checkpoints preloaded (on CUDA in float16 when a GPU is present: the app's `--device auto`), then,
through `gradio_client`, each named endpoint once cold and once warm: `/models`, `/loops`, `/text_to_audio`,
`/audio_to_audio` in its four modes, `/listening_next`, `/listening_answer`, `/listening_results`.

Each answer is checked, not just timed: every audio file it names exists, lasts what the result says
(within 10 ms), is finite and not silent; loops carry their loop points. Prints a Markdown table and writes
JSON (seconds per call, cold and warm, ratio to the audio's duration, what failed). Exits 1 when any call
failed, so a device run can stop on it.

    python -m benchmarks.smoke_endpoints --out benchmarks/results/smoke-cpu.json          # here, on CPU
    python -m benchmarks.smoke_endpoints --device cuda --out "$OUT/smoke-gpu.json"        # on a GPU machine

About a minute on a GPU; several on this project's 2-core CPU machines (use `--steps 4` there).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.bench_load import free_port, rss_mb, start_server, write_noise

LOOPS = "checkpoints/loops · bundled"
TEXT = "checkpoints/text · bundled"
LISTENING_KEY = "smoke-test-experimenter-key"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto",
                        help="the app's --device: auto (CUDA in float16 when present, else CPU), cpu, cuda or cuda:N "
                             "(default %(default)s)")
    parser.add_argument("--steps", type=int, default=20,
                        help="denoising steps of every generation (default %(default)s, the app's default)")
    parser.add_argument("--threads", type=int, default=2, help="the server's torch CPU threads (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds one call may take before it counts as failed (default %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/smoke-endpoints.json"),
                        help="where the JSON result goes (default %(default)s)")
    return parser.parse_args(argv)


def calls(upload: str, steps: int) -> list[tuple[str, str, dict]]:
    """(label, api name, keyword inputs) of every endpoint that makes audio, with their main options."""
    short = {"steps": steps, "seed": 3}
    return [
        ("loops", "/loops", {"model": LOOPS, "variations": 2, "repeats": 2, **short}),
        ("loops at 140 BPM in A minor", "/loops", {"model": LOOPS, "bpm": 140.0, "key": "A minor", "repeats": 2,
                                                    **short}),
        ("text to audio", "/text_to_audio", {"model": TEXT, "prompt": "punchy drum loop, 120 bpm",
                                             "seconds_total": 4.0, "num_outputs": 2, **short}),
        ("text, chords in C major", "/text_to_audio", {"model": TEXT, "prompt": "warm piano chords in C major",
                                                       "seconds_total": 4.0, "key": "C major", **short}),
        ("variation", "/audio_to_audio", {"audio": upload, "mode": "variation", "model": LOOPS, **short}),
        ("inpaint", "/audio_to_audio", {"audio": upload, "mode": "inpaint region", "model": LOOPS,
                                        "region_start": 1.0, "region_end": 2.0, **short}),
        ("outpaint", "/audio_to_audio", {"audio": upload, "mode": "outpaint around region", "model": LOOPS,
                                         "region_start": 1.0, "region_end": 3.0, **short}),
        ("continue", "/audio_to_audio", {"audio": upload, "mode": "continue", "model": LOOPS,
                                         "extend_seconds": 2.0, **short}),
    ]


def audio_problems(output: dict, loop: bool = False) -> list[str]:
    """What is wrong with one output's audio file (missing, wrong length, not finite, silent, no loop points)."""
    path = output.get("audio")
    if not path or not Path(path).is_file():
        return [f"no audio file ({path!r})"]
    audio, rate = sf.read(path, dtype="float32")
    problems = []
    if abs(len(audio) / rate - float(output.get("duration_s", 0))) > 0.01:
        problems.append(f"lasts {len(audio) / rate:.3f} s, the result says {output.get('duration_s')}")
    if not np.all(np.isfinite(audio)):
        problems.append("not finite")
    elif float(np.sqrt(np.mean(np.square(audio)))) < 1e-4:
        problems.append("silent")
    if loop and not (output.get("loop") and Path(output["loop"]).is_file()):
        problems.append("no loop file")
    return problems


def timed(client, api_name: str, inputs: dict, timeout: float) -> tuple[float, dict | None, str]:
    """(seconds, result or None, error message)."""
    started = time.perf_counter()
    try:
        result = client.submit(api_name=api_name, **inputs).result(timeout=timeout)
        return time.perf_counter() - started, result, ""
    except Exception as error:  # noqa: BLE001 (any failure of the call is what a smoke test reports)
        return time.perf_counter() - started, None, str(error).splitlines()[0][:200]


def check_generation(client, label: str, api_name: str, inputs: dict, timeout: float) -> dict:
    """One endpoint called twice (cold, then warm with the next seed): seconds, audio seconds, problems."""
    row = {"label": label, "endpoint": api_name, "problems": []}
    for attempt in ("cold", "warm"):
        seconds, result, error = timed(client, api_name, {**inputs, "seed": inputs["seed"] + (attempt == "warm")},
                                       timeout)
        row[f"{attempt}_s"] = round(seconds, 2)
        if result is None:
            row["problems"].append(f"{attempt}: {error}")
            continue
        outputs = result.get("outputs", [])
        row["audio_s"] = round(sum(float(output.get("duration_s", 0)) for output in outputs), 3)
        row["problems"] += [f"{attempt}: {problem}" for output in outputs
                             for problem in audio_problems(output, loop=api_name == "/loops")]
        if not outputs:
            row["problems"].append(f"{attempt}: no outputs")
    if row.get("audio_s"):
        row["warm_x_real_time"] = round(row.get("warm_s", 0) / row["audio_s"], 3)
    return row


def check_listening(client, timeout: float) -> list[dict]:
    """A blind pair, an answer to it and the experimenter's results."""
    seconds, trial, error = timed(client, "/listening_next", {}, timeout)
    rows = [{"label": "listening pair", "endpoint": "/listening_next", "cold_s": round(seconds, 2),
             "problems": [] if trial else [error]}]
    if trial:
        for side in ("clip_a", "clip_b"):
            rows[0]["problems"] += audio_problems({"audio": trial[side], "duration_s": trial["duration_s"]})
        seconds, answer, error = timed(client, "/listening_answer", {"trial_id": trial["trial_id"], "answer": "A"},
                                       timeout)
        rows.append({"label": "listening answer", "endpoint": "/listening_answer", "cold_s": round(seconds, 2),
                     "problems": [] if answer and answer.get("recorded") else [error or "not recorded"]})
    seconds, results, error = timed(client, "/listening_results", {"key": LISTENING_KEY}, timeout)
    rows.append({"label": "listening results", "endpoint": "/listening_results", "cold_s": round(seconds, 2),
                 "problems": [] if results and results.get("answers", 0) >= 1 else [error or "no answers counted"]})
    return rows


def machine() -> dict:
    """The device the server could use (torch's view from this process)."""
    import torch

    cuda = torch.cuda.is_available()
    return {"torch": torch.__version__, "cuda": cuda, "gpu": torch.cuda.get_device_name(0) if cuda else None,
            "cpu_count": os.cpu_count()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from gradio_client import Client, handle_file

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        upload = scratch / "input.wav"
        write_noise(upload, seconds=4.0)
        started = time.perf_counter()
        server = start_server(free_port(), scratch / "outputs", args.threads, scratch / "server.log", 30.0,
                              scratch / "gradio-temp", device=args.device,
                              extra_args=("--listening-key", LISTENING_KEY))
        start_s = time.perf_counter() - started
        try:
            url = f"http://127.0.0.1:{server.args[server.args.index('--port') + 1]}/"
            client = Client(url, verbose=False, download_files=str(scratch / "downloads"))
            seconds, models, error = timed(client, "/models", {}, args.timeout)
            rows.append({"label": "models", "endpoint": "/models", "cold_s": round(seconds, 2),
                         "problems": [] if models and len(models.get("models", [])) >= 2 else [error or "no models"]})
            for label, api_name, inputs in calls(handle_file(str(upload)), args.steps):
                rows.append(check_generation(client, label, api_name, inputs, args.timeout))
            rows += check_listening(client, args.timeout)
            rss = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=60)
        log_tail = (scratch / "server.log").read_text(errors="replace").splitlines()[-20:]
    failed = [row for row in rows if row["problems"]]
    result = {"machine": machine(), "settings": {key: str(value) for key, value in vars(args).items()},
              "server_start_s": round(start_s, 1), "server_rss_mb": round(rss, 1), "calls": rows,
              "failed": len(failed), "server_log_tail": log_tail}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"server started in {start_s:.1f} s on --device {args.device}; {result['machine']}")
    print("| call | endpoint | cold s | warm s | audio s | warm / real time | problems |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['label']} | {row['endpoint']} | {row.get('cold_s', '')} | {row.get('warm_s', '')} | "
              f"{row.get('audio_s', '')} | {row.get('warm_x_real_time', '')} | {'; '.join(row['problems'])} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
