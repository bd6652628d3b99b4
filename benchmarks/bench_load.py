"""A bounded load test of the app on 127.0.0.1: the real command line (`python app.py`) on the bundled
checkpoints, then, through `gradio_client`:

1. `--requests` requests sent at once, spread over the Loops and Text tabs, including a few a
   hostile or careless visitor sends (over the compute budget, an unlisted model);
2. `--cancels` submit-and-cancel cycles of a long job (cancelled `--cancel-after` s after submitting);
3. one short request right after the cancels, whose wait shows whether cancelled work still runs;
4. `--abandoned` REST calls (`POST /gradio_api/call/loops`) whose result stream is never opened, then one
   ordinary request: its wait shows whether the abandoned work was dropped (`--abandoned-call-s`);
5. an upload flood: `--uploads` files of `--upload-mb` MB sent at once to `/gradio_api/upload`;
6. the largest legal request of each generation endpoint (every length, count and export setting at
   its maximum), each answered by a refusal that names the limit, or by its result.

Reports completed, refused and cancelled counts, the longest wait, WAV files written, the uploads kept
and refused, and the server's resident memory and disk use (outputs and Gradio's temporary files) before
and after, in a Markdown table and `benchmarks/results/load.json`. Every request goes to 127.0.0.1, and
the test stops by itself (each request has a timeout).

    python -m benchmarks.bench_load --requests 20 --cancels 10 --abandoned 64 --uploads 40
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
LOOPS = "checkpoints/loops · bundled"
TEXT = "checkpoints/text · bundled"
# Seeds of the cancelled jobs (1000, 1001, ...), so their files, if any, can be told apart.
CANCEL_SEED = 1000
# Seeds of the abandoned REST calls (2000, 2001, ...).
ABANDON_SEED = 2000
# The longest clip the bundled text model's timing conditioning represents (seconds).
TEXT_MAX_SECONDS = 18.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20, help="requests sent at once (default %(default)s)")
    parser.add_argument("--cancels", type=int, default=10, help="submit-and-cancel cycles (default %(default)s)")
    parser.add_argument("--cancel-after", type=float, default=1.5,
                        help="seconds between submitting a long job and cancelling it (default %(default)s)")
    parser.add_argument("--steps", type=int, default=4,
                        help="denoising steps of the ordinary requests (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="the server's --threads (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds any one request may take before the test gives up on it (default %(default)s)")
    parser.add_argument("--abandoned", type=int, default=64,
                        help="REST calls whose result is never read (default %(default)s)")
    parser.add_argument("--abandoned-call-s", type=float, default=5.0,
                        help="the server's --abandoned-call-s: seconds an unread REST call may wait "
                        "(default %(default)s)")
    parser.add_argument("--uploads", type=int, default=40, help="files uploaded at once (default %(default)s)")
    parser.add_argument("--upload-mb", type=float, default=45.0, help="size of each uploaded file in MB "
                        "(default %(default)s, under the server's 50 MB per file)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "load.json",
                        help="where the JSON result goes (default %(default)s)")
    return parser.parse_args(argv)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid` in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def folder_mb(folder: Path) -> float:
    """Bytes of every file under `folder`, in MB (0 when it does not exist)."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 1e6 if folder.exists() else 0.0


def start_server(port: int, output_dir: Path, threads: int, log: Path, abandoned_call_s: float,
                 temp_dir: Path, device: str = "cpu", extra_args: tuple[str, ...] = ()) -> subprocess.Popen:
    """`python app.py` on 127.0.0.1:`port` with the bundled checkpoints preloaded on `device`, its output in
    `log`; returns once its /config answers (RuntimeError if it exits or takes over 300 s)."""
    command = [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--output-dir", str(output_dir),
               "--device", device, "--threads", str(threads), "--preload", "--real-dir", str(output_dir / "none"),
               # its users all come from one address, 127.0.0.1: the per-client queue is the whole queue
               "--client-queue", "64", "--abandoned-call-s", str(abandoned_call_s), *extra_args]
    environment = {**os.environ, "GRADIO_TEMP_DIR": str(temp_dir)}
    server = subprocess.Popen(command, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT, env=environment)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the app exited with status {server.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/config", timeout=5).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(1)
    server.kill()
    raise RuntimeError(f"the app did not start within 300 s; see {log}")


def request_mix(count: int, steps: int) -> list[tuple[str, str, dict]]:
    """(kind, api name, keyword inputs): mostly ordinary loops and text requests, one in ten over the
    budget, one in ten naming an unlisted model."""
    mix = []
    for index in range(count):
        if index % 10 == 8:
            mix.append(("over budget", "/text_to_audio", {"prompt": "drum loop", "model": TEXT, "seconds_total": 60.0,
                                                          "steps": 250, "seed": index, "num_outputs": 4}))
        elif index % 10 == 9:
            mix.append(("unknown model", "/loops", {"model": "/etc", "seed": index, "steps": steps}))
        elif index % 2:
            mix.append(("text", "/text_to_audio", {"prompt": "punchy drum loop", "model": TEXT, "seconds_total": 4.0,
                                                   "steps": steps, "seed": index}))
        else:
            mix.append(("loops", "/loops", {"model": LOOPS, "seed": index, "steps": steps, "repeats": 2}))
    return mix


def largest_requests(upload: str) -> list[tuple[str, str, dict]]:
    """(kind, api name, keyword inputs): every length, count and export setting of each generation
    endpoint at the most the page accepts."""
    export = {"export_rate": "48000", "export_channels": "stereo", "export_format": "WAV 24-bit"}
    return [
        ("largest loops", "/loops", {"model": LOOPS, "variations": 4, "seed": 1, "steps": 1, "clip_seconds": 20.0,
                                     "repeats": 16, **export}),
        ("largest text", "/text_to_audio", {"prompt": "drum loop", "model": TEXT, "seconds_total": TEXT_MAX_SECONDS,
                                            "steps": 1,
                                            "seed": 1, "num_outputs": 4, **export}),
        ("largest continue", "/audio_to_audio", {"audio": upload, "mode": "continue", "model": LOOPS,
                                                 "extend_seconds": 20.0, "steps": 1, "seed": 1}),
    ]


def run(client, api_name: str, inputs: dict, timeout: float) -> tuple[str, float, str]:
    """("completed" | "refused", seconds from submitting to the answer, message)."""
    start = time.perf_counter()
    try:
        client.submit(api_name=api_name, **inputs).result(timeout=timeout)
        return "completed", time.perf_counter() - start, ""
    except Exception as error:  # noqa: BLE001 (the app's gr.Error arrives as AppError; count any failure)
        return "refused", time.perf_counter() - start, str(error).splitlines()[0][:120]


def abandon_rest_calls(url: str, count: int) -> list[int]:
    """POST `count` loop requests to the REST API and never open their result streams; their HTTP statuses."""
    statuses = []
    for index in range(count):
        body = {"data": [LOOPS, "", 1, ABANDON_SEED + index, 250]}
        statuses.append(httpx.post(f"{url}gradio_api/call/loops", json=body, timeout=30).status_code)
    return statuses


def upload_flood(url: str, count: int, megabytes: float) -> dict[int, int]:
    """`count` uploads of `megabytes` MB each, sent at once: how many got each HTTP status."""
    payload = os.urandom(int(megabytes * 1e6))

    def upload(index: int) -> int:
        files = {"files": (f"flood-{index}.wav", payload, "audio/wav")}
        try:
            return httpx.post(f"{url}gradio_api/upload", files=files, timeout=300).status_code
        except httpx.HTTPError:
            return 0  # the connection was dropped

    with ThreadPoolExecutor(max_workers=min(count, 16)) as pool:
        statuses = list(pool.map(upload, range(count)))
    return {status: statuses.count(status) for status in sorted(set(statuses))}


def usage(server: subprocess.Popen, output_dir: Path, temp_dir: Path) -> dict:
    """The server's resident memory and disk use (outputs, temporary files), in MB."""
    return {"rss_mb": round(rss_mb(server.pid), 1), "outputs_mb": round(folder_mb(output_dir), 1),
            "temp_mb": round(folder_mb(temp_dir), 1)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from gradio_client import Client, handle_file

    with tempfile.TemporaryDirectory() as scratch:
        output_dir, temp_dir = Path(scratch) / "outputs", Path(scratch) / "gradio-temp"
        port = free_port()
        server = start_server(port, output_dir, args.threads, Path(scratch) / "server.log", args.abandoned_call_s,
                              temp_dir)
        try:
            url = f"http://127.0.0.1:{port}/"
            client = Client(url, verbose=False, download_files=str(Path(scratch) / "downloads"))
            client.predict(api_name="/loops", **request_mix(1, 1)[0][2])  # warm-up: both models used once
            client.predict(api_name="/text_to_audio", **request_mix(2, 1)[1][2])
            before = usage(server, output_dir, temp_dir)
            wavs_before = len(list(output_dir.rglob("*.wav")))
            # 1. Concurrent requests
            mix = request_mix(args.requests, args.steps)
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=len(mix)) as pool:
                answers = list(pool.map(lambda item: run(client, item[1], item[2], args.timeout), mix))
            burst_seconds = time.perf_counter() - started
            wavs_after_burst = len(list(output_dir.rglob("*.wav")))
            # 2. Submit and cancel
            cancelled = 0
            for cycle in range(args.cancels):
                # 250 steps of one window: within the budget, about a minute of work on a small CPU.
                job = client.submit(api_name="/loops", model=LOOPS, seed=CANCEL_SEED + cycle, steps=250)
                time.sleep(args.cancel_after)
                cancelled += bool(job.cancel())
            # 3. A short request right after
            short = {"model": LOOPS, "seed": 7, "steps": 2}
            status, wait_after_cancels, _ = run(client, "/loops", short, args.timeout)
            # 4. Abandoned REST calls, then an ordinary request once they are past --abandoned-call-s
            abandoned = abandon_rest_calls(url, args.abandoned)
            time.sleep(args.abandoned_call_s + 5)
            status_abandoned, wait_after_abandoned, _ = run(client, "/loops", short, args.timeout)
            wavs_abandoned = len(list(output_dir.rglob(f"*_seed{ABANDON_SEED // 100}??_*.wav")))
            # 5. Upload flood
            uploads = upload_flood(url, args.uploads, args.upload_mb)
            # 6. The largest legal request of each endpoint
            longest_input = Path(scratch) / "longest-input.wav"
            write_noise(longest_input, seconds=60.0)
            largest = [(kind, *run(client, api_name, inputs | ({"audio": handle_file(str(longest_input))}
                                                               if "audio" in inputs else {}), args.timeout))
                       for kind, api_name, inputs in largest_requests(str(longest_input))]
            time.sleep(2)
            after = usage(server, output_dir, temp_dir)
            wavs_cancelled = len(list(output_dir.rglob(f"*_seed{CANCEL_SEED // 100}??_*.wav")))
        finally:
            server.terminate()
            server.wait(timeout=60)
    waits = [seconds for outcome, seconds, _ in answers if outcome == "completed"]
    result = {
        "machine": {"cpu_count": os.cpu_count(), "load_average_after": os.getloadavg()},
        "settings": vars(args) | {"output": str(args.output)},
        "requests": len(mix),
        "completed": sum(outcome == "completed" for outcome, _, _ in answers),
        "refused": sum(outcome == "refused" for outcome, _, _ in answers),
        "refusals": sorted({message for outcome, _, message in answers if outcome == "refused"}),
        "kinds": {kind: sum(item[0] == kind for item in mix) for kind in sorted({item[0] for item in mix})},
        "burst_seconds": round(burst_seconds, 1),
        "longest_wait_s": round(max(waits), 1) if waits else None,
        "median_wait_s": round(statistics.median(waits), 1) if waits else None,
        "cancel_cycles": args.cancels,
        "cancelled": cancelled,
        "short_request_after_cancels": {"status": status, "wait_s": round(wait_after_cancels, 1)},
        "abandoned_calls": {"posted": len(abandoned), "http_statuses": {str(code): abandoned.count(code)
                                                                         for code in sorted(set(abandoned))},
                            "wavs_written": wavs_abandoned,
                            "short_request_after": {"status": status_abandoned,
                                                    "wait_s": round(wait_after_abandoned, 1)}},
        "upload_flood": {"files": args.uploads, "mb_each": args.upload_mb,
                         "http_statuses": {str(code): count for code, count in uploads.items()}},
        "largest_requests": [{"kind": kind, "outcome": outcome, "seconds": round(seconds, 1), "message": message}
                             for kind, outcome, seconds, message in largest],
        "wavs_written_by_burst": wavs_after_burst - wavs_before,
        "wavs_written_by_cancelled_jobs": wavs_cancelled,
        "server": {"before": before, "after": after},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    return 0


def write_noise(path: Path, seconds: float, sample_rate: int = 16_000) -> None:
    """A WAV of quiet noise, `seconds` long (the audio-to-audio input)."""
    import numpy as np
    import soundfile as sf

    sf.write(path, np.random.default_rng(0).uniform(-0.1, 0.1, int(seconds * sample_rate)), sample_rate)


def print_table(result: dict) -> None:
    """The result as a Markdown table."""
    print("| measure | value |\n|---|---|")
    for key in ("requests", "completed", "refused", "longest_wait_s", "median_wait_s", "cancel_cycles", "cancelled",
                "wavs_written_by_cancelled_jobs"):
        print(f"| {key.replace('_', ' ')} | {result[key]} |")
    after = result["short_request_after_cancels"]
    print(f"| 2-step request right after the cancels | {after['status']}, waited {after['wait_s']} s |")
    abandoned = result["abandoned_calls"]
    print(f"| abandoned REST calls (HTTP statuses) | {abandoned['posted']} ({abandoned['http_statuses']}); "
          f"{abandoned['wavs_written']} WAVs written |")
    print(f"| 2-step request after them | {abandoned['short_request_after']['status']}, waited "
          f"{abandoned['short_request_after']['wait_s']} s |")
    flood = result["upload_flood"]
    print(f"| upload flood: {flood['files']} x {flood['mb_each']} MB (HTTP statuses) | {flood['http_statuses']} |")
    for item in result["largest_requests"]:
        print(f"| {item['kind']} | {item['outcome']} in {item['seconds']} s: {item['message'] or 'made'} |")
    before, after = result["server"]["before"], result["server"]["after"]
    for key in ("rss_mb", "outputs_mb", "temp_mb"):
        print(f"| server {key.replace('_mb', '')} before / after (MB) | {before[key]} / {after[key]} |")


if __name__ == "__main__":
    raise SystemExit(main())
