"""The one reader of `model_index.json`, on a saved tiny pipeline and on folders that are not pipelines."""
from __future__ import annotations

import json

import pytest

from models.model_index import is_pipeline_folder, pipeline_class_name, read_model_index


def test_reads_a_pipeline_folder_and_rejects_others(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "MelDiffusionPipeline", "unet": ["a", "b"]}))
    assert is_pipeline_folder(tmp_path)
    assert read_model_index(tmp_path)["unet"] == ["a", "b"]
    assert pipeline_class_name(tmp_path) == "MelDiffusionPipeline"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not is_pipeline_folder(empty) and pipeline_class_name(empty) is None
    with pytest.raises(FileNotFoundError, match="not a saved pipeline"):
        read_model_index(empty)
    (empty / "model_index.json").write_text("{broken")
    assert pipeline_class_name(empty) is None
    (empty / "model_index.json").write_text(json.dumps({"_class_name": 3}))
    assert pipeline_class_name(empty) is None
    assert pipeline_class_name(tmp_path / "missing") is None
