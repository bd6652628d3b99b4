"""`model_index.json`, the diffusers file that makes a folder (or hub repo) a saved pipeline: it names
the pipeline class (`_class_name`) and each component's library and class. The one reader of it."""
from __future__ import annotations

import json
from pathlib import Path

MODEL_INDEX = "model_index.json"


def is_pipeline_folder(folder: str | Path) -> bool:
    """Whether `folder` holds a `model_index.json` (a saved pipeline)."""
    return (Path(folder) / MODEL_INDEX).is_file()


def read_model_index(name_or_path: str | Path, revision: str | None = None, token: str | None = None,
                     cache_dir: str | Path | None = None) -> dict:
    """The parsed `model_index.json` of a local folder, or of a hub repo (downloaded once into the hub
    cache; `revision`, `token` and `cache_dir` as `huggingface_hub.hf_hub_download` takes them).

    Raises:
        FileNotFoundError: a local folder without one (it is not a saved pipeline).
    """
    path = Path(name_or_path)
    if path.is_dir():
        if not is_pipeline_folder(path):
            raise FileNotFoundError(f"{path} has no {MODEL_INDEX}: it is not a saved pipeline.")
        return json.loads((path / MODEL_INDEX).read_text(encoding="utf-8"))
    from huggingface_hub import hf_hub_download

    index_file = hf_hub_download(str(name_or_path), MODEL_INDEX, revision=revision, token=token, cache_dir=cache_dir)
    return json.loads(Path(index_file).read_text(encoding="utf-8"))


def pipeline_class_name(folder: str | Path) -> str | None:
    """`_class_name` of a local folder's `model_index.json`, or None when it is missing, unreadable or
    not a string (for scanning folders that may hold anything)."""
    try:
        name = read_model_index(folder).get("_class_name") if Path(folder).is_dir() else None
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None
