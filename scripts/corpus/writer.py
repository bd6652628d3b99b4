"""Files describing a built corpus: per-split `metadata.jsonl` (Hugging Face `audiofolder`
layout), a root `corpus.jsonl` with every clip, `ATTRIBUTION.md` and `corpus_info.json`
(sample rate in Hz, seed, counts, licence class, build time in seconds).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from music.audiofolder import METADATA_JSONL, write_rows
from scripts.corpus.licenses import (
    BACH_CHORALES,
    FLUID_R3_GM,
    GENERATED_MATERIAL,
    MMA_GROOVES,
    SHARE_ALIKE,
    SONIC_PI_SAMPLES,
    SourceLicense,
    most_restrictive,
)
from scripts.corpus.splits import SPLIT_NAMES, leaked_groups

CORPUS_INDEX = "corpus.jsonl"
CORPUS_INFO = "corpus_info.json"
ATTRIBUTION = "ATTRIBUTION.md"
# Fields that name the material a clip comes from; none may be shared between splits.
LEAK_CHECK_FIELDS = ("group", "pattern_seed", "loop_file", "piece")


def uniform_rows(rows: list[dict]) -> list[dict]:
    """Rows with the same keys in the same order and one JSON type per key, so column-wise
    readers (pyarrow, pandas, `datasets`) infer one schema for every split file.

    A key a row lacks (or holds None for) becomes "" for text keys and [] for list keys, so
    a split without, say, any pitched clip still has a text `key` column; numeric keys stay
    None. BPMs are floats.
    """
    keys: dict[str, None] = {}
    empty_of: dict[str, object] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
        for key, value in row.items():
            if isinstance(value, str):
                empty_of.setdefault(key, "")
            elif isinstance(value, list):
                empty_of.setdefault(key, [])
    uniform = []
    for row in rows:
        filled = {}
        for key in keys:
            value = row.get(key)
            filled[key] = value if value is not None else empty_of.get(key)
        if filled.get("bpm") is not None:
            filled["bpm"] = float(filled["bpm"])
        uniform.append(filled)
    return uniform


def write_split_metadata(out_dir: Path, rows: list[dict]) -> dict[str, int]:
    """`<out>/<split>/metadata.jsonl` for each split (file names relative to the split
    folder) and `<out>/corpus.jsonl` with every clip (file names relative to `out`).

    Returns clips per split.
    """
    rows = uniform_rows(sorted(rows, key=lambda row: row["clip_id"]))
    counts = {}
    for split in SPLIT_NAMES:
        split_rows = [row for row in rows if row["split"] == split]
        counts[split] = len(split_rows)
        if split_rows:
            write_rows(out_dir / split / METADATA_JSONL, split_rows)
    index_rows = [dict(row, file_name=f"{row['split']}/{row['file_name']}") for row in rows]
    write_rows(out_dir / CORPUS_INDEX, index_rows)
    return counts


def check_no_leaks(rows: list[dict]) -> None:
    """Raise if any pattern seed, loop file, source piece or group is in two splits."""
    leaked = leaked_groups(rows, LEAK_CHECK_FIELDS)
    if leaked:
        examples = {key: sorted(values)[:3] for key, values in leaked.items()}
        raise RuntimeError(f"split leak: material shared between splits: {examples}")


def _used_licenses(rows: list[dict], catalog_kits: list) -> list[SourceLicense]:
    known = {lic.source_id: lic for lic in (FLUID_R3_GM, SONIC_PI_SAMPLES, BACH_CHORALES,
                                            MMA_GROOVES, GENERATED_MATERIAL)}
    known.update({kit.license.source_id: kit.license for kit in catalog_kits})
    used = sorted({source for row in rows for source in row["sources"]})
    return [known[source] for source in used if source in known]


def write_attribution(out_dir: Path, rows: list[dict], catalog_kits: list) -> str:
    """Write ATTRIBUTION.md (sources, licences, clip counts); return the corpus class."""
    clips_per_source = Counter(source for row in rows for source in row["sources"])
    licenses = _used_licenses(rows, catalog_kits)
    corpus_class = most_restrictive([row["license_class"] for row in rows])
    lines = ["# Corpus attribution", ""]
    if corpus_class == SHARE_ALIKE:
        lines += [
            ("**This corpus contains share-alike material (GPL / CC-BY-SA), built with "
            "`--include-share-alike`.** Clips whose `license_class` is `share-alike` must be "
            "redistributed under their licence; filter on `license_class == \"permissive\"` "
            "for a permissive subset."), "",
        ]
    else:
        lines += [
            ("Every clip comes from permissive sources (CC0, MIT, public domain, CC-BY, or "
            "GPL with a composition exception that leaves rendered music free)."), "",
        ]
    lines += [
        ("Each line of `metadata.jsonl` carries the clip's `license` (SPDX expression), "
        "`license_class` and `attribution`."), "",
        "| Source | Author | Licence | Class | Clips | Where the licence was read |",
        "|---|---|---|---|---|---|",
    ]
    for lic in licenses:
        lines.append(f"| {lic.title} | {lic.author} | {lic.license_id} | "
                     f"{lic.license_class} | {clips_per_source[lic.source_id]} | "
                     f"{lic.evidence} |")
    lines += [
        "", "CC-BY sources require credit: keep this file with any copy of the corpus.", "",
        "Never included: non-commercial sources (e.g. music21's Essen folk song collection).",
        "",
    ]
    (out_dir / ATTRIBUTION).write_text("\n".join(lines), encoding="utf-8")
    return corpus_class


def corpus_summary(rows: list[dict]) -> dict:
    """Counts by split, subset, kind, genre and licence class, and total audio hours."""
    return {
        "clips": len(rows),
        "hours": round(sum(row["seconds_total"] for row in rows) / 3600.0, 3),
        "by_split": dict(Counter(row["split"] for row in rows)),
        "by_subset": dict(Counter(row["subset"] for row in rows)),
        "by_kind": dict(Counter(row["kind"] for row in rows)),
        "by_genre": dict(sorted(Counter(row["genre"] for row in rows).items())),
        "by_license_class": dict(Counter(row["license_class"] for row in rows)),
    }


def write_corpus_info(out_dir: Path, info: dict) -> None:
    """Write corpus_info.json."""
    (out_dir / CORPUS_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")

