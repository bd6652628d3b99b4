"""Sharded evaluation (issue 15 item 6): `accelerate launch` with 2 CPU processes gives the same
numbers as one process, for embedding (fad subcommand, FAD, KAD, MAD, FAD-inf, per-clip rows),
for torchmetrics state synced across processes, and for clips generated from a checkpoint."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from evaluation.__main__ import main
from evaluation.audio_io import write_clip
from evaluation.synthetic import add_noise, synthetic_clip

SR = 16000

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.skipif(shutil.which("accelerate") is None, reason="needs accelerate's launcher"),
]


def launch(args: list[str], repo, port: int) -> subprocess.CompletedProcess:
    """`accelerate launch` with 2 processes; its multi-GPU launcher is torchrun, which runs on CPU."""
    path = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": path}
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(port),
        *args,
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=repo, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def write_set(folder, seeds, transform=None):
    for i, seed in enumerate(seeds):
        clip = synthetic_clip(seed, 1.0, SR)
        write_clip(folder / f"clip-{i:03d}.wav", transform(clip, i) if transform else clip, SR)
    return folder


def test_two_processes_give_the_one_process_numbers(tmp_path, capsys):
    reference = write_set(tmp_path / "reference", range(100, 123))  # odd counts: uneven shards
    evaluated = write_set(tmp_path / "evaluated", range(200, 215), lambda x, i: add_noise(x, 20, i))
    flags = ["--embedder", "mel-stats", "--no-cache", "--quiet", "--bootstrap", "20", "--per-clip"]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    launch(
        [
            "-m",
            "evaluation",
            "fad",
            str(reference),
            str(evaluated),
            *flags,
            "--json",
            str(tmp_path / "two.json"),
        ],
        repo,
        29517,
    )
    assert (
        main(["fad", str(reference), str(evaluated), *flags, "--json", str(tmp_path / "one.json")])
        == 0
    )
    capsys.readouterr()
    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    for key in ("fad", "kad", "mad"):
        for field in ("value", "ci_low", "ci_high"):
            assert two[key][field] == pytest.approx(one[key][field], rel=1e-9, abs=1e-12), key
    assert two["fad_inf"]["value"] == pytest.approx(one["fad_inf"]["value"], rel=1e-9)
    assert [r["file"] for r in two["per_clip"]] == [r["file"] for r in one["per_clip"]]
    assert two["evaluated"]["num_clips"] == 15 and two["reference"]["num_clips"] == 23


def test_torchmetrics_state_syncs_across_two_processes(tmp_path):
    script = tmp_path / "sync.py"
    script.write_text(
        textwrap.dedent(f"""
        import json, numpy as np, torch
        from evaluation import distributed
        from evaluation.fad import FADMetric, fad
        from evaluation.kad import KADMetric, kad
        distributed.init_from_environment()
        rng = np.random.default_rng(0)
        ref, ev = rng.normal(size=(41, 6)), rng.normal(size=(30, 6)) + 0.3
        fad_metric, kad_metric = FADMetric(), KADMetric()
        for metric in (fad_metric, kad_metric):
            metric.update(torch.from_numpy(np.stack(distributed.shard(list(ref)))), real=True)
            metric.update(torch.from_numpy(np.stack(distributed.shard(list(ev)))), real=False)
        synced = {{"fad": float(fad_metric.compute()), "kad": float(kad_metric.compute()),
                  "world": distributed.world_size()}}
        if distributed.is_main_process():
            json.dump({{**synced, "fad_one": fad(ref, ev)}}, open({str(tmp_path / "sync.json")!r}, "w"))
        distributed.shutdown()
    """)
    )
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    launch([str(script)], repo, 29518)
    result = json.loads((tmp_path / "sync.json").read_text())
    assert result["world"] == 2
    assert result["fad"] == pytest.approx(result["fad_one"], rel=1e-9)
    rng = np.random.default_rng(0)
    ref, ev = rng.normal(size=(41, 6)), rng.normal(size=(30, 6)) + 0.3
    from evaluation.kad import kad

    assert result["kad"] == pytest.approx(kad(ref, ev), rel=1e-9)


def test_two_processes_generate_the_one_process_clips(tmp_path):
    tiny_models = pytest.importorskip("tests.tiny_models")
    pytest.importorskip("models.loading")
    from evaluation.generate import generate_clips

    checkpoint = tmp_path / "checkpoint-1"
    tiny_models.tiny_mel_pipeline().save_pretrained(checkpoint)
    script = tmp_path / "generate.py"
    script.write_text(
        textwrap.dedent(f"""
        from evaluation import distributed
        from evaluation.generate import generate_clips
        distributed.init_from_environment()
        generate_clips({str(checkpoint)!r}, {str(tmp_path / "two")!r}, 5, seed=3,
                       num_inference_steps=2, seconds_total=0.4, device="cpu", progress=False)
        distributed.shutdown()
    """)
    )
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    launch([str(script)], repo, 29519)
    generate_clips(
        str(checkpoint),
        tmp_path / "one",
        5,
        seed=3,
        num_inference_steps=2,
        seconds_total=0.4,
        device="cpu",
        progress=False,
    )
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "two").iterdir())
    for name in names:
        if name != "generation.json":
            assert (tmp_path / "one" / name).read_bytes() == (
                tmp_path / "two" / name
            ).read_bytes(), name
