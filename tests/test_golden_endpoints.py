"""Golden outputs of every named endpoint: each runs on the tiny random checkpoints with fixed seeds, and
its result fields and the audio and metadata of every file it writes must match the record in
`tests/golden/endpoints.json`. They pin behaviour across refactors: a move of code that changes what a
user gets fails here.

Audio is compared by the hash of its decoded samples (and its metadata less the creation time). Float
results can differ in the last bits between CPUs, so on a machine other than the one that made the
record (`machine` in the file) a hash mismatch passes only if the samples' fingerprint (length, rate,
channels and the RMS of 16 equal slices) agrees within 1e-3 and every result field is identical.

Regenerate after an intended change of behaviour: `GOLDEN_UPDATE=1 python -m pytest tests/test_golden_endpoints.py`.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import re
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.test_app_support import LOOPS, TEXT, make_studio, save_checkpoints
from tests.tiny_models import SAMPLE_RATE, drum_like_signal
from webapp.api import StudioAPI

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore::UserWarning")]

RECORD = Path(__file__).parent / "golden" / "endpoints.json"
UPDATE = os.environ.get("GOLDEN_UPDATE") == "1"
# Metadata that changes from run to run (when, where), not with behaviour.
VOLATILE_METADATA = {"created_utc", "input_file"}


def machine() -> str:
    """What the float results depend on: CPU model, torch version and thread count."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu} | torch {torch.__version__} | {torch.get_num_threads()} thread(s)"


def audio_record(data: bytes) -> dict:
    """Hash and fingerprint of an audio file's decoded samples and its metadata (volatile keys left out)."""
    from music.loops import read_wav_metadata

    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    digest = hashlib.sha256(samples.tobytes())
    digest.update(str(rate).encode())
    metadata = {}
    if data[:4] == b"RIFF":
        with _temporary(data) as path:
            metadata = {k: v for k, v in read_wav_metadata(path).items() if k not in VOLATILE_METADATA}
    digest.update(json.dumps(metadata, sort_keys=True).encode())
    slices = np.array_split(samples, 16) if len(samples) >= 16 else [samples]
    return {"sha256": digest.hexdigest(), "frames": int(samples.shape[0]), "channels": int(samples.shape[1]),
            "sample_rate": int(rate), "rms": [round(float(np.sqrt(np.mean(s ** 2))) if s.size else 0.0, 6)
                                               for s in slices]}


@contextlib.contextmanager
def _temporary(data: bytes) -> Iterator[str]:
    """A temporary WAV file holding `data` (the WAV metadata reader takes a path)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.wav"
        path.write_bytes(data)
        yield str(path)


def file_record(path: str | None) -> dict | None:
    """A result's file: its name's suffix and its audio record (a zip: each member's)."""
    if path is None:
        return None
    data = Path(path).read_bytes()
    if path.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {"zip": {Path(name).suffix + f"#{index}": (audio_record(archive.read(name))
                                                             if not name.endswith((".txt", ".json", ".csv"))
                                                             else None)
                            for index, name in enumerate(sorted(archive.namelist()))}}
    return {"suffix": Path(path).suffix, "audio": audio_record(data)}


STAMP = re.compile(r"\d{8}-\d{6}_[0-9a-f]{4}")


def plain(value: object) -> object:
    """A result made comparable: file fields become file records, floats rounded to 6 places, the time
    stamps in file names replaced."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if hasattr(value, "path") and hasattr(value, "orig_name"):  # gradio FileData
        return file_record(str(value.path))
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, str):
        return STAMP.sub("<stamp>", value)
    return value


def _upload(root: Path, seconds: float) -> str:
    """A drum-like WAV where the server keeps uploads (the API refuses server paths elsewhere)."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()) / f"golden-{root.name}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"upload-{seconds:g}.wav"
    sf.write(path, drum_like_signal(seconds, SAMPLE_RATE, seed=11), SAMPLE_RATE, subtype="PCM_16")
    return str(path)


CASES = {
    "loops-default": lambda api, root: api.loops(model=LOOPS, seed=3, steps=3, variations=2),
    "loops-bpm-key-export": lambda api, root: api.loops(
        model=LOOPS, seed=5, steps=2, bpm=100.0, repeats=2, key="A minor", export_rate="44100",
        export_channels="stereo", export_format="WAV 24-bit"),
    # Last of the loops cases: a sampler asked for must not leak into the cases after it.
    "loops-scheduler-ddim": lambda api, root: api.loops(model=LOOPS, seed=8, steps=3, scheduler="ddim"),
    "text": lambda api, root: api.text_to_audio(prompt="punchy drum loop, 120 BPM", model=TEXT, seed=4, steps=3,
                                                seconds_total=1.5, num_outputs=2, guidance_scale=2.0),
    "text-bpm-flac": lambda api, root: api.text_to_audio(prompt="dusty breakbeat", model=TEXT, seed=9, steps=2,
                                                         seconds_total=1.0, bpm=90.0, export_format="FLAC 16-bit"),
    "a2a-variation": lambda api, root: api.audio_to_audio(_upload(root, 1.0), mode="variation", model=LOOPS,
                                                          strength=0.5, steps=3, seed=6),
    "a2a-inpaint": lambda api, root: api.audio_to_audio(_upload(root, 1.0), mode="inpaint region", model=LOOPS,
                                                        region_start=0.2, region_end=0.6, steps=3, seed=6),
    "a2a-outpaint": lambda api, root: api.audio_to_audio(_upload(root, 1.0), mode="outpaint around region",
                                                         model=LOOPS, region_start=0.2, region_end=0.6, steps=2,
                                                         seed=2),
    "a2a-continue-text": lambda api, root: api.audio_to_audio(_upload(root, 0.6), mode="continue", model=TEXT,
                                                              prompt="drum loop", extend_seconds=0.5, steps=2,
                                                              seed=1),
}


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> tuple[StudioAPI, Path]:
    root = tmp_path_factory.mktemp("golden")
    studio = make_studio(root, save_checkpoints(root), max_steps=50, max_work=100_000)
    return StudioAPI(studio), root


@pytest.fixture(scope="module")
def record() -> dict:
    if UPDATE:
        return {"machine": machine(), "cases": {}}
    return json.loads(RECORD.read_text())


@pytest.fixture(scope="module", autouse=True)
def save_record(record):
    yield
    if UPDATE:
        RECORD.parent.mkdir(exist_ok=True)
        RECORD.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


def _files(value: object) -> list[dict]:
    """Every audio record inside a plain result, in order."""
    if isinstance(value, dict):
        if "sha256" in value and "rms" in value:
            return [value]
        return [found for item in value.values() for found in _files(item)]
    if isinstance(value, list):
        return [found for item in value for found in _files(item)]
    return []


def _without_hashes(value: object) -> object:
    if isinstance(value, dict):
        return {k: _without_hashes(v) for k, v in value.items() if k not in ("sha256", "rms")}
    if isinstance(value, list):
        return [_without_hashes(item) for item in value]
    return value


@pytest.mark.parametrize("case", sorted(CASES))
def test_endpoint_output_matches_the_golden_record(api, record, case):
    studio_api, root = api
    result = plain(CASES[case](studio_api, root))
    if UPDATE:
        record["cases"][case] = result
        return
    expected = record["cases"][case]
    if result == expected:
        return
    assert _without_hashes(result) == _without_hashes(expected), "result fields changed"
    assert machine() != record["machine"], "audio changed on the machine that made the record"
    for got, want in zip(_files(result), _files(expected), strict=True):
        np.testing.assert_allclose(got["rms"], want["rms"], atol=1e-3)
