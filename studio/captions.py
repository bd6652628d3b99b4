"""What a checkpoint was trained on, in a musician's words: example prompts drawn from its training
captions, the kinds of clips, genres, instruments and tempo range (BPM) it heard, and a short
statement of what it can and cannot do.

A checkpoint folder may carry `captions.json` (written by `python -m scripts.caption_summary`, so the
bundled checkpoints describe themselves on a fresh clone without the corpus); otherwise its
`train_files.txt` is matched against the corpus `metadata.jsonl` files when the corpus is on disk.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

CAPTIONS_FILE = "captions.json"
# The corpus's clip kinds (metadata "kind") as a musician names them.
KIND_NAMES = {
    "kit_loop": "drum-kit loops", "gm_drum_loop": "drum loops", "break": "chopped breakbeats",
    "part": "melodic parts (bass lines, chords, melodies, arpeggios)", "band": "band grooves",
    "chorale": "Bach chorales",
}
# What no clip of the demo corpus holds (it is rendered from soundfonts and drum samples).
NEVER_HEARD = "sung lyrics, speech, sound effects, field recordings"
MAX_EXAMPLES = 8


@dataclass
class TrainingCaptions:
    """A summary of one checkpoint's training captions.

    Attributes:
        clips: training clips with a caption.
        examples: real training captions, spread over the kinds of clips (clickable prompts).
        kinds: clips per kind ("kit_loop", "part", ...), most first.
        subsets: the corpus folders the clips came from ("drums", "melodic", ...).
        genres, instruments: the most frequent ones, most first.
        bpm_range: slowest and fastest tempo in BPM, or None when the captions carry none.
    """

    clips: int
    examples: list[str]
    kinds: dict[str, int] = field(default_factory=dict)
    subsets: list[str] = field(default_factory=list)
    genres: list[str] = field(default_factory=list)
    instruments: list[str] = field(default_factory=list)
    bpm_range: tuple[float, float] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> TrainingCaptions:
        bpm_range = data.get("bpm_range")
        return cls(clips=int(data.get("clips", 0)), examples=[str(text) for text in data.get("examples", [])],
                   kinds={str(k): int(v) for k, v in dict(data.get("kinds", {})).items()},
                   subsets=[str(s) for s in data.get("subsets", [])],
                   genres=[str(g) for g in data.get("genres", [])],
                   instruments=[str(i) for i in data.get("instruments", [])],
                   bpm_range=None if not bpm_range else (float(bpm_range[0]), float(bpm_range[1])))


def _stable_order(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def summarize_captions(rows: Iterable[dict], max_examples: int = MAX_EXAMPLES) -> TrainingCaptions:
    """Summarise corpus metadata rows (`text`, `kind`, `genre`, `instruments`, `bpm`, `file_name`).

    Examples are picked round-robin over the kinds (the same ones every time: ordered by a hash of
    the caption, not at random), so a drum-and-melody model shows both."""
    rows = [row for row in rows if str(row.get("text") or "").strip()]
    kinds = Counter(str(row.get("kind") or "clip") for row in rows)
    by_kind: dict[str, list[str]] = {}
    for row in rows:
        by_kind.setdefault(str(row.get("kind") or "clip"), []).append(str(row["text"]).strip())
    queues = [sorted(set(texts), key=_stable_order) for _, texts in sorted(by_kind.items())]
    examples: list[str] = []
    while len(examples) < max_examples and any(queues):
        for queue in queues:
            if queue and len(examples) < max_examples:
                examples.append(queue.pop(0))
    subsets = sorted({Path(str(row.get("file_name", ""))).parts[-2] for row in rows
                      if len(Path(str(row.get("file_name", ""))).parts) >= 2})
    genres = Counter(str(row["genre"]) for row in rows if row.get("genre"))
    instruments = Counter(str(name) for row in rows for name in row.get("instruments") or [])
    tempos = [float(row["bpm"]) for row in rows if isinstance(row.get("bpm"), (int, float)) and row["bpm"] > 0]
    return TrainingCaptions(
        clips=len(rows), examples=examples, kinds=dict(kinds.most_common()), subsets=subsets,
        genres=[name for name, _ in genres.most_common(30)],
        instruments=[name for name, _ in instruments.most_common(30)],
        bpm_range=(min(tempos), max(tempos)) if tempos else None,
    )


def corpus_rows_for(train_files: list[str], corpus: Path) -> list[dict]:
    """The metadata rows of `train_files` (paths relative to `corpus`, e.g. "train/drums/x.flac")."""
    wanted = set(train_files)
    rows = []
    for index in sorted(corpus.glob("*/metadata.jsonl")):
        split = index.parent.name
        for line in index.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and f"{split}/{row.get('file_name', '')}" in wanted:
                rows.append(row)
    return rows


def read_train_files(folder: Path) -> list[str]:
    """`train_files.txt` of a checkpoint folder (one corpus-relative path a line), or []."""
    try:
        return [line.strip() for line in (folder / "train_files.txt").read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError):
        return []


def training_subsets(folder: str | Path) -> set[str]:
    """Corpus folders a checkpoint was trained on ("drums", "melodic"...), from `train_files.txt`
    (`<split>/<subset>/<file>`); empty when unknown."""
    return {Path(line).parts[1] for line in read_train_files(Path(folder)) if len(Path(line).parts) >= 3}


def load_training_captions(folder: str | Path, corpus_dirs: Iterable[str | Path] = ()) -> TrainingCaptions | None:
    """The summary of a checkpoint's training captions: its `captions.json`, else its `train_files.txt`
    matched against the first corpus folder (of `corpus_dirs`, then `splits.json`'s "corpus") whose
    metadata knows them; None when neither is there (e.g. a hub model)."""
    folder = Path(folder)
    try:
        return TrainingCaptions.from_dict(json.loads((folder / CAPTIONS_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, AttributeError, IndexError):
        pass
    train_files = read_train_files(folder)
    if not train_files:
        return None
    candidates = [Path(corpus) for corpus in corpus_dirs]
    try:
        named = json.loads((folder / "splits.json").read_text(encoding="utf-8")).get("corpus")
        if isinstance(named, str):
            candidates.append(Path(named))
    except (OSError, ValueError, AttributeError):
        pass
    for corpus in candidates:
        if corpus.is_dir():
            rows = corpus_rows_for(train_files, corpus)
            if rows:
                return summarize_captions(rows)
    return None


def _listing(names: list[str], most: int) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def capabilities_markdown(captions: TrainingCaptions | None, text_conditioned: bool | None) -> str:
    """A short, honest statement of what a model can and cannot do, from its training captions."""
    if captions is None:
        return ("Its training data is not described in its folder (no `captions.json` or "
                "`train_files.txt`), so what it knows is not listed here.")
    kinds: Counter[str] = Counter()
    for kind, count in captions.kinds.items():
        kinds[KIND_NAMES.get(kind, kind)] += count
    heard = _listing([f"{name} ({count})" for name, count in kinds.most_common()], 6)
    tempo = "" if captions.bpm_range is None else (
        f" at {captions.bpm_range[0]:g}–{captions.bpm_range[1]:g} BPM")
    lines = [f"**Trained on** {captions.clips:,} captioned clips{tempo}: {heard}."]
    if captions.genres:
        lines.append(f"**Genres**: {_listing(captions.genres, 12)}.")
    if captions.instruments:
        lines.append(f"**Instruments**: {_listing(captions.instruments, 14)}.")
    if text_conditioned:
        lines.append(f"**Cannot do**: {NEVER_HEARD}, or genres and instruments it never heard (their words "
                     "are not understood). Name a genre, instruments, a key and a tempo, as in the examples.")
    else:
        lines.append(f"**Cannot do**: follow a prompt (it is unconditional); {NEVER_HEARD}.")
    return "  \n".join(lines)
