"""A bounded load test of the app on 127.0.0.1: the real command line (`python app.py`) on the bundled
checkpoints, then, through `gradio_client`:

1. `--requests` requests sent at once, spread over the Loops and Text tabs, including a few a
   hostile or careless visitor sends (over the compute budget, an unlisted model);
2. `--cancels` submit-and-cancel cycles of a long job (cancelled `--cancel-after` s after submitting);
3. one short request right after the cancels, whose wait shows whether cancelled work still runs.

Reports completed, refused and cancelled counts, the longest wait, WAV files written, and the server's
resident memory before and after, in a Markdown table and `benchmarks/results/load.json`.

    python -m benchmarks.bench_load --requests 20 --cancels 10
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


def start_server(port: int, output_dir: Path, threads: int, log: Path) -> subprocess.Popen:
    command = [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--output-dir", str(output_dir),
               "--device", "cpu", "--threads", str(threads), "--preload", "--real-dir", str(output_dir / "none"),
               "--client-queue", "64"]  # its users all come from one address, 127.0.0.1
    server = subprocess.Popen(command, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
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


def request_mix(count: int, steps: int) -> list[tuple[str, str, list]]:
    """(kind, api name, inputs): mostly ordinary loops and text requests, one in ten over the budget,
    one in ten naming an unlisted model."""
    mix = []
    for index in range(count):
        if index % 10 == 8:
            mix.append(("over budget", "/text_to_audio",
                        [TEXT, "drum loop", "", 60.0, 0.0, 3.0, 250, "model default", index, False, 4]))
        elif index % 10 == 9:
            mix.append(("unknown model", "/loops",
                        ["/etc", 1, index, False, steps, "model default", 1, 0, 0, ""]))
        elif index % 2:
            mix.append(("text", "/text_to_audio",
                        [TEXT, "punchy drum loop", "", 4.0, 0.0, 3.0, steps, "model default", index, False, 1]))
        else:
            mix.append(("loops", "/loops", [LOOPS, 1, index, False, steps, "model default", 2, 0, 0, ""]))
    return mix


def run(client, api_name: str, inputs: list, timeout: float) -> tuple[str, float, str]:
    """("completed" | "refused", seconds from submitting to the answer, message)."""
    start = time.perf_counter()
    try:
        client.submit(*inputs, api_name=api_name).result(timeout=timeout)
        return "completed", time.perf_counter() - start, ""
    except Exception as error:  # noqa: BLE001 (the app's gr.Error arrives as AppError; count any failure)
        return "refused", time.perf_counter() - start, str(error).splitlines()[0][:120]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from gradio_client import Client

    with tempfile.TemporaryDirectory() as scratch:
        output_dir = Path(scratch) / "outputs"
        port = free_port()
        server = start_server(port, output_dir, args.threads, Path(scratch) / "server.log")
        try:
            url = f"http://127.0.0.1:{port}/"
            client = Client(url, verbose=False, download_files=str(Path(scratch) / "downloads"))
            client.predict(*request_mix(1, 1)[0][2], api_name="/loops")  # warm-up: both models used once
            client.predict(*request_mix(2, 1)[1][2], api_name="/text_to_audio")
            memory_before = rss_mb(server.pid)
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
                job = client.submit(LOOPS, 1, CANCEL_SEED + cycle, False, 250, "model default", 1, 0, 0, "",
                                    api_name="/loops")
                time.sleep(args.cancel_after)
                cancelled += bool(job.cancel())
            # 3. A short request right after
            status, wait_after_cancels, _ = run(client, "/loops", [LOOPS, 1, 7, False, 2, "model default", 1, 0, 0, ""],
                                                args.timeout)
            time.sleep(2)
            memory_after = rss_mb(server.pid)
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
        "wavs_written_by_burst": wavs_after_burst - wavs_before,
        "wavs_written_by_cancelled_jobs": wavs_cancelled,
        "server_rss_mb": {"before": round(memory_before, 1), "after": round(memory_after, 1)},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print("| measure | value |\n|---|---|")
    for key in ("requests", "completed", "refused", "longest_wait_s", "median_wait_s", "cancel_cycles", "cancelled",
                "wavs_written_by_cancelled_jobs"):
        print(f"| {key.replace('_', ' ')} | {result[key]} |")
    after = result["short_request_after_cancels"]
    print(f"| 2-step request right after the cancels | {after['status']}, waited {after['wait_s']} s |")
    print(f"| server memory (RSS) before / after | {result['server_rss_mb']['before']} / "
          f"{result['server_rss_mb']['after']} MB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
