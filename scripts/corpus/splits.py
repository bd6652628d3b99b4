"""Train / valid / test splits by *group*: every clip names the material it comes from (a
pattern seed, a MIDI piece, a loop file, a chorale), and a whole group goes to one split,
so test clips are unseen material rather than re-renders of training clips.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

SPLIT_NAMES = ("train", "valid", "test")
DEFAULT_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


def stable_int(text: str) -> int:
    """A 63-bit integer hash of `text` that is the same in every process and Python run."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


def assign_group_splits(groups: list[str], seed: int, family: str,
                        fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS,
                        ) -> dict[str, str]:
    """Map each distinct group to a split name.

    Groups of one `family` (e.g. "breaks") are shuffled with the seed and cut by
    `fractions`; with three or more groups, valid and test get at least one group each, so
    a family with few groups (eight loop files) still has unseen test material.
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, "
                         f"got {fractions}")
    unique_groups = sorted(set(groups))
    rng = np.random.default_rng([seed, stable_int(family)])
    order = [unique_groups[i] for i in rng.permutation(len(unique_groups))]
    count = len(order)
    n_valid = round(count * fractions[1])
    n_test = round(count * fractions[2])
    if count >= 3:
        n_valid = max(n_valid, 1) if fractions[1] > 0 else 0
        n_test = max(n_test, 1) if fractions[2] > 0 else 0
    n_train = count - n_valid - n_test
    assignment = {}
    for index, group in enumerate(order):
        if index < n_train:
            assignment[group] = "train"
        elif index < n_train + n_valid:
            assignment[group] = "valid"
        else:
            assignment[group] = "test"
    return assignment


def groups_in(*corpus_listings: Path) -> set[str]:
    """The `group` values of every row of these `corpus.jsonl` files: the source material (pattern seeds,
    MIDI pieces, loop files) of those corpus builds, so that another build's clips of other groups are fresh."""
    return {str(row["group"]) for listing in corpus_listings
            for row in map(json.loads, Path(listing).read_text(encoding="utf-8").splitlines()) if row.get("group")}


def leaked_groups(rows: list[dict], group_keys: tuple[str, ...] = ("group",)) -> dict[str, set]:
    """Values of `group_keys` that occur in more than one split (empty when splits are clean).

    Args:
        rows: metadata rows with a `split` field and the group fields.
        group_keys: fields that must never be shared between splits.
    """
    splits_of: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in rows:
        for key in group_keys:
            value = row.get(key)
            if value is None or value == "" or value == []:
                continue
            for item in value if isinstance(value, list) else [value]:
                splits_of[(key, str(item))].add(row["split"])
    leaked: dict[str, set] = defaultdict(set)
    for (key, value), splits in splits_of.items():
        if len(splits) > 1:
            leaked[key].add(value)
    return dict(leaked)
