"""The evaluation CLI never answers a user mistake with a traceback (issue 13 item 8): every case
below prints one line naming the problem to stderr and exits with status 2; `--debug` brings the
traceback back, and a real bug keeps its traceback."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from evaluation.__main__ import main
from evaluation.audio_io import write_clip
from evaluation.synthetic import synthetic_clip

SR = 16000

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def empty_torch_hub(tmp_path, monkeypatch):
    """No cached torch.hub weights, whatever this machine has downloaded."""
    import torch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Named folders for the cases: good sets, bad files, bad metadata."""
    root = tmp_path_factory.mktemp("cli")

    def good(name, count, seconds=1.0, captions=True):
        folder = root / name
        rows = []
        for i in range(count):
            write_clip(folder / f"clip-{i:02d}.wav", synthetic_clip(100 + i, seconds, SR), SR)
            rows.append({"file_name": f"clip-{i:02d}.wav", "text": f"a loop at {90 + i} bpm"})
        if captions:
            (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return folder

    good("good", 4)
    good("good2", 4)
    good("two", 2)
    good("one", 1)
    (root / "empty").mkdir()
    for kind in ("corrupt", "nan", "silent"):
        folder = good(kind, 3)
        bad = folder / "bad.wav"
        if kind == "corrupt":
            bad.write_bytes(b"RIFF but not really a wave file")
        elif kind == "nan":
            sf.write(bad, np.full(SR, np.nan, np.float32), SR, subtype="FLOAT")
        else:
            sf.write(bad, np.zeros(SR, np.float32), SR)
    good("badjson", 3, captions=False)
    (root / "badjson" / "metadata.jsonl").write_text('{"file_name": "clip-00.wav", "text": \n')
    good("notobject", 3, captions=False)
    (root / "notobject" / "metadata.jsonl").write_text('["clip-00.wav", "a loop"]\n')
    good("latin1", 3, captions=False)
    (root / "latin1" / "metadata.jsonl").write_bytes(
        b'{"file_name": "clip-00.wav", "text": "caf\xe9 loop at 120 bpm"}\n'
    )
    (root / "a-file").write_text("not a folder")
    return root


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    try:
        status = main(args)
    except SystemExit as exit_:  # argparse refusals
        status = exit_.code
    return status, capsys.readouterr().err


MEL = ["--embedder", "mel-stats", "--no-cache", "--quiet"]

# (case id, arguments with {root} for the fixture folder, a phrase the one line must contain)
CASES = [
    ("fad-empty-folder", ["fad", "{root}/good", "{root}/empty", *MEL], "0 audio file"),
    ("fad-one-file", ["fad", "{root}/good", "{root}/one", *MEL], "at least 2"),
    ("fad-missing-folder", ["fad", "{root}/good", "{root}/nope", *MEL], "not found"),
    ("fad-file-not-folder", ["fad", "{root}/good", "{root}/a-file", *MEL], "not a folder"),
    ("fad-corrupt-file", ["fad", "{root}/good", "{root}/corrupt", *MEL], "--skip-bad"),
    ("fad-nan-file", ["fad", "{root}/good", "{root}/nan", *MEL], "NaN"),
    ("fad-silent-file", ["fad", "{root}/good", "{root}/silent", *MEL], "silent"),
    ("embed-corrupt-file", ["embed", "{root}/corrupt", *MEL], "--skip-bad"),
    ("unknown-embedder", ["fad", "{root}/good", "{root}/good2", "--embedder", "nope"], "unknown"),
    (
        "missing-checkpoint",
        [
            "embed",
            "{root}/good",
            "--embedder",
            "clap-bundled",
            "--embedder-checkpoint",
            "{root}/no-such-checkpoint",
            "--no-cache",
        ],
        "no clap-bundled checkpoint",
    ),
    (
        "offline-hub-embedder",
        [
            "embed",
            "{root}/good",
            "--embedder",
            "clap-laion",
            "--embedder-checkpoint",
            "nobody/no-such-clap",
            "--no-cache",
        ],
        "cannot load",
    ),
    (
        "offline-vggish",
        ["embed", "{root}/good", "--embedder", "vggish", "--no-cache"],
        "HF_HUB_OFFLINE",
    ),
    (
        "offline-mert",
        ["embed", "{root}/good", "--embedder", "mert-v1-95m", "--no-cache"],
        "cannot load",
    ),
    (
        "openl3-not-converted",
        [
            "embed",
            "{root}/good",
            "--embedder",
            "openl3",
            "--embedder-checkpoint",
            "{root}/none.safetensors",
            "--no-cache",
        ],
        "no converted weights",
    ),
    (
        "bootstrap-negative",
        ["fad", "{root}/good", "{root}/good2", *MEL, "--bootstrap", "-5"],
        "--bootstrap",
    ),
    ("batch-size-zero", ["embed", "{root}/good", *MEL, "--batch-size", "0"], "--batch-size"),
    ("seed-negative", ["fad", "{root}/good", "{root}/good2", *MEL, "--seed", "-1"], "--seed"),
    (
        "fpr-above-one",
        ["memorization", "{root}/good", "--train", "{root}/good2", *MEL, "--fpr", "5"],
        "--fpr",
    ),
    (
        "top-k-negative",
        ["memorization", "{root}/good", "--train", "{root}/good2", *MEL, "--top-k", "-3"],
        "--top-k",
    ),
    (
        "cross-validate-one-fold",
        ["memorization", "{root}/good", "--train", "{root}/good2", *MEL, "--cross-validate", "1"],
        "--cross-validate takes 2 or more folds",
    ),
    (
        "min-overlap-negative",
        ["memorization", "{root}/good", "--train", "{root}/good2", *MEL, "--min-overlap", "-1"],
        "--min-overlap",
    ),
    (
        "bootstrap-not-a-number",
        ["fad", "{root}/good", "{root}/good2", *MEL, "--bootstrap", "x"],
        "--bootstrap",
    ),
    (
        "unwritable-json",
        ["fad", "{root}/good", "{root}/good2", *MEL, "--json", "{root}/a-file/out.json"],
        "cannot write --json",
    ),
    (
        "json-is-a-folder",
        ["fad", "{root}/good", "{root}/good2", *MEL, "--json", "{root}/good"],
        "is a folder",
    ),
    (
        "memorization-train-too-small",
        ["memorization", "{root}/good", "--train", "{root}/two", *MEL],
        "needs at least 100",
    ),
    (
        "memorization-baseline-too-small",
        [
            "memorization",
            "{root}/good",
            "--train",
            "{root}/two",
            "--baseline",
            "{root}/good2",
            *MEL,
            "--fpr",
            "0.1",
        ],
        "needs at least 10",
    ),
    ("clap-score-bad-json", ["clap-score", "{root}/badjson", *MEL], "not valid JSON"),
    ("clap-score-not-object", ["clap-score", "{root}/notobject", *MEL], "JSON object"),
    ("clap-score-non-utf8", ["clap-score", "{root}/latin1", *MEL], "not UTF-8"),
    ("clap-score-no-text-tower", ["clap-score", "{root}/good", *MEL], "no text tower"),
    (
        "clap-score-no-captions",
        ["clap-score", "{root}/badjson", *MEL, "--captions", "{root}/missing.jsonl"],
        "not found",
    ),
    ("tempo-non-utf8", ["tempo", "{root}/latin1", "--quiet"], "not UTF-8"),
    ("tempo-bad-json", ["tempo", "{root}/badjson", "--quiet"], "not valid JSON"),
    ("tempo-missing-folder", ["tempo", "{root}/nope", "--quiet"], "not found"),
    ("tempo-bad-where", ["tempo", "{root}/good", "--quiet", "--where", "bpm"], "KEY=VALUE"),
    ("control-missing-folder", ["control", "{root}/nope", "--quiet"], "not found"),
    ("control-bad-json", ["control", "{root}/badjson", "--quiet"], "not valid JSON"),
    ("control-bad-tolerance", ["control", "{root}/good", "--quiet", "--tolerance", "2"], "--tolerance"),
    (
        "compare-missing-reference",
        ["compare", "{root}/good", "--reference", "{root}/nope", *MEL],
        "not found",
    ),
    (
        "compare-missing-checkpoint",
        [
            "compare",
            "{root}/no-such-checkpoint",
            "--reference",
            "{root}/good",
            "--out",
            "{root}/out",
            *MEL,
        ],
        "no-such",
    ),
    (
        "compare-num-clips-zero",
        ["compare", "{root}/good", "--reference", "{root}/good2", "--num-clips", "0", *MEL],
        "--num-clips",
    ),
    (
        "compare-seconds-negative",
        ["compare", "{root}/good", "--reference", "{root}/good2", "--seconds", "-2", *MEL],
        "--seconds",
    ),
    (
        "compare-reference-too-small-for-memorization",
        [
            "compare",
            "{root}/good",
            "--reference",
            "{root}/good2",
            "--train",
            "{root}/two",
            "--out",
            "{root}/out",
            *MEL,
        ],
        "needs at least 100",
    ),
]


@pytest.mark.parametrize("args, phrase", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_user_error_exits_2_with_one_line_and_no_traceback(folders, capsys, args, phrase):
    argv = [a.replace("{root}", str(folders)) for a in args]
    status, err = run_cli(argv, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert phrase in lines[0], lines[0]


def test_debug_brings_the_traceback_back(folders):
    with pytest.raises(ValueError, match="at least 2"):
        main(["fad", str(folders / "good"), str(folders / "one"), *MEL, "--debug"])


def test_a_real_bug_keeps_its_traceback(folders, monkeypatch):
    import evaluation.compare

    def broken(*args, **kwargs):
        raise TypeError("a bug")

    monkeypatch.setattr(evaluation.compare, "distance_scores", broken)
    with pytest.raises(TypeError, match="a bug"):
        main(["fad", str(folders / "good"), str(folders / "good2"), *MEL])


def test_the_process_exit_status_is_2(folders):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "evaluation",
            "fad",
            str(folders / "good"),
            str(folders / "nope"),
            *MEL,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_good_input_still_runs(folders, capsys):
    status, _ = run_cli(
        ["fad", str(folders / "good"), str(folders / "good2"), *MEL, "--bootstrap", "5"], capsys
    )
    assert status == 0


@pytest.mark.parametrize("flag, melody_view", [([], True), (["--no-melody-view"], False)])
def test_the_melody_view_flag_reaches_the_memorization_report_and_compare(folders, monkeypatch, flag, melody_view):
    """`--no-melody-view` (unpitched material) is passed on by `memorization` and by `compare`; the report's
    own behaviour is tested in test_evaluation_memorization."""
    import evaluation.compare
    import evaluation.memorization

    seen = {}

    class Stop(Exception):
        pass

    def report(*args, **kwargs):
        seen["memorization"] = kwargs["melody_view"]
        raise Stop

    def compare(*args, **kwargs):
        seen["compare"] = kwargs["memorization_melody_view"]
        raise Stop

    monkeypatch.setattr(evaluation.memorization, "memorization_report", report)
    monkeypatch.setattr(evaluation.compare, "compare", compare)
    with pytest.raises(Stop):
        main(["memorization", str(folders / "good"), "--train", str(folders / "good2"), *MEL, *flag])
    with pytest.raises(Stop):
        main(["compare", str(folders / "good"), "--reference", str(folders / "good2"), *MEL, *flag])
    assert seen == {"memorization": melody_view, "compare": melody_view}
