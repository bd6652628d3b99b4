"""A `ModelSource` for scripts and benchmarks: one model loaded through the same front door as the app's
(`models.backends.load_generator`), offered under every picker value, used by one call at a time."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from models.backends import load_generator
from models.generator import AudioGenerator
from studio.generation import ModelChoice


class OneModel:
    """One loaded model as a `studio.generation.ModelSource`.

    Args:
        model: the model.
        source: its folder or hub id (names it in files and results).
    """

    def __init__(self, model: AudioGenerator, source: str) -> None:
        self.model = model
        self.choice = ModelChoice(str(source), str(source), "local", model.capabilities.text,
                                  Path(str(source)).name)
        self._lock = threading.Lock()

    @classmethod
    def from_source(cls, source: str, device: str | None = "cpu") -> OneModel:
        """Load `source` (folder or hub id) as the app does."""
        return cls(load_generator(source, device=device), source)

    def resolve(self, value: str | None) -> ModelChoice:
        return self.choice

    def load(self, value: str | None = None) -> AudioGenerator:
        return self.model

    @contextmanager
    def use(self, value: str | None) -> Iterator[tuple[ModelChoice, AudioGenerator]]:
        with self._lock:
            yield self.choice, self.model

    @property
    def local_choices(self) -> list[ModelChoice]:
        return [self.choice]

    def default_label(self, needs_text: bool | None = None) -> str:
        return self.choice.label
