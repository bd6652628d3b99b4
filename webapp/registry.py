"""The model picker and the model cache: bundled checkpoints (`checkpoints/<name>/`), checkpoint
folders found under a model directory (e.g. training output), and hub ids loaded on demand.

Only what the picker lists can be loaded (bundled, `--model-dir`, and an allow-list of hub ids,
extended by `--allow-hub-model`): any other value gets the same `UNKNOWN_MODEL` message, whether it
names an existing folder, a missing one, an uploaded one or a hub repository, so the field tells a
visitor nothing about the server's files. `--custom-models` (off by default) opens typed-in paths and
hub ids for a trusted local user.

A model is loaded once, through `models.backends.load_generator`, and kept as an `AudioGenerator` (the
`max_loaded` most recently used stay in memory); calls on one model are serialised by its own lock,
because schedulers keep per-call state.
"""
from __future__ import annotations

import gc
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import gradio as gr
import torch

from models.backends import as_generator, load_generator
from models.generator import AudioGenerator
from models.hub import ModelUnavailableError
from studio.generation import ModelChoice
from studio.outputs import public_path

# Pipeline classes (`_class_name` in model_index.json) the app can run, and whether they take text.
RUNNABLE_CLASSES = {
    "MelDiffusionPipeline": False,
    "AudioDiffusionPipeline": False,
    "LatentAudioDiffusionPipeline": False,
    "TextToMelPipeline": True,
    "StableAudioPipeline": True,
}
# Hub models offered in the picker (downloaded on first use; Stable Audio Open is gated).
HUB_MODELS = {
    "teticio/audio-diffusion-256": False,
    "teticio/audio-diffusion-breaks-256": False,
    "teticio/audio-diffusion-instrumental-hiphop-256": False,
    "teticio/audio-diffusion-ddim-256": False,
    "teticio/latent-audio-diffusion-256": False,
    "teticio/latent-audio-diffusion-ddim-256": False,
    "stabilityai/stable-audio-open-1.0": True,
    # Today's strongest open models (diffusers 0.42; models/stable_audio_3.py, models/ace_step.py):
    # small-music runs on a CPU, medium and ACE-Step want a GPU.
    "stabilityai/stable-audio-3-small-music": True,
    "stabilityai/stable-audio-3-medium": True,
    "ACE-Step/acestep-v15-xl-turbo-diffusers": True,
}
ORIGIN_NOTES = {"bundled": "bundled", "local": "model dir", "hub": "hub, downloads on first use", "custom": "custom"}
# Folders searched this deep below a model directory (e.g. runs/<run>/checkpoint-<step>/).
MAX_SEARCH_DEPTH = 4
# The one answer to every model value that is not in the list.
UNKNOWN_MODEL = "Unknown model: pick one from the list."
# Longest model value looked at (labels and hub ids are far shorter).
MAX_MODEL_VALUE = 300


def read_class_name(folder: Path) -> str | None:
    """`_class_name` of `folder/model_index.json`, or None when missing, unreadable or not a string."""
    try:
        name = json.loads((folder / "model_index.json").read_text(encoding="utf-8")).get("_class_name")
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed while searching
        return 0.0


def find_checkpoints(root: str | Path, max_depth: int = MAX_SEARCH_DEPTH) -> list[Path]:
    """Folders under `root` (itself included) holding a runnable `model_index.json`, newest first.

    A checkpoint folder is not searched further (its `unet/` etc. are components, not checkpoints);
    hidden folders are skipped.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        return []
    found: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        try:
            is_checkpoint = (folder / "model_index.json").is_file()
        except OSError:
            return
        if is_checkpoint:
            if read_class_name(folder) in RUNNABLE_CLASSES:
                found.append(folder)
            return
        if depth >= max_depth:
            return
        try:
            children = sorted(child for child in folder.iterdir() if child.is_dir() and not child.name.startswith("."))
        except OSError:
            return
        for child in children:
            walk(child, depth + 1)

    walk(root, 0)
    return sorted(found, key=lambda folder: _mtime(folder / "model_index.json"), reverse=True)


class ModelRegistry:
    """The models the app offers and the pipelines it has loaded.

    Args:
        bundled_dir: the repository's `checkpoints/` folder (bundled checkpoints, offline).
        model_dirs: more folders to search for checkpoints (e.g. training output).
        device: "auto" (CUDA in half precision when present, else CPU), "cpu", "cuda" or "cuda:N".
        hub_models: hub ids offered in the picker, with whether each takes text (None: unknown until
            loaded); default `HUB_MODELS`.
        max_loaded: pipelines kept in memory at once (least recently used ones are dropped).
        allow_custom: whether a typed-in folder path or hub id may be loaded (off by default; never
            on a public server: it lets visitors load any folder of the server, or download any repo).
        loader: `models.backends.load_generator` or a stand-in with its signature (tests); what it returns
            goes through `models.backends.as_generator`, so a loaded pipeline is wrapped.
    """

    def __init__(
        self,
        bundled_dir: str | Path | None = "checkpoints",
        model_dirs: list[str | Path] | tuple = (),
        device: str = "auto",
        hub_models: dict[str, bool | None] | None = None,
        max_loaded: int = 2,
        allow_custom: bool = False,
        loader: Callable = load_generator,
    ) -> None:
        self.bundled_dir = None if bundled_dir is None else Path(bundled_dir).expanduser()
        self.model_dirs = [Path(folder).expanduser() for folder in model_dirs]
        self.device = device
        self.hub_models = dict(HUB_MODELS if hub_models is None else hub_models)
        self.max_loaded = max(1, int(max_loaded))
        self.allow_custom = allow_custom
        self.loader = loader
        self._choices: dict[str, ModelChoice] = {}
        self._loaded: OrderedDict[str, object] = OrderedDict()
        self._use_locks: dict[str, threading.Lock] = {}
        self._load_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self.refresh()

    # ---- the picker ------------------------------------------------------------------------

    def refresh(self) -> list[ModelChoice]:
        """Search the folders again (new checkpoints appear, removed ones go); returns all choices."""
        choices: list[ModelChoice] = []
        seen_sources: set[str] = set()

        def add(folder: Path, origin: str, base: Path) -> None:
            source = str(folder.resolve())
            if source in seen_sources:
                return
            seen_sources.add(source)
            try:
                relative = folder.resolve().relative_to(base.resolve().parent)
            except ValueError:
                relative = folder
            name = relative.as_posix()
            inside = folder.resolve().relative_to(base.resolve()).parts if folder != base else ()
            choices.append(ModelChoice(
                label=f"{name} · {ORIGIN_NOTES[origin]}", source=source, origin=origin,
                text_conditioned=RUNNABLE_CLASSES.get(read_class_name(folder) or ""),
                short_name="-".join(inside) or base.name,
            ))

        if self.bundled_dir is not None:
            for folder in sorted(find_checkpoints(self.bundled_dir, max_depth=2)):
                add(folder, "bundled", self.bundled_dir)
        for model_dir in self.model_dirs:
            for folder in find_checkpoints(model_dir):
                add(folder, "local", model_dir)
        for hub_id, text_conditioned in self.hub_models.items():
            choices.append(ModelChoice(label=f"{hub_id} · {ORIGIN_NOTES['hub']}", source=hub_id, origin="hub",
                                       text_conditioned=text_conditioned, short_name=hub_id.split("/")[-1]))
        unique: dict[str, ModelChoice] = {}
        for choice in choices:
            label, number = choice.label, 2
            while label in unique:
                label, number = f"{choice.label} ({number})", number + 1
            unique[label] = ModelChoice(label, choice.source, choice.origin, choice.text_conditioned,
                                        choice.short_name)
        with self._state_lock:
            self._choices = unique
        return list(unique.values())

    @property
    def choices(self) -> list[ModelChoice]:
        return list(self._choices.values())

    def labels(self, needs_text: bool | None = None) -> list[str]:
        """Picker labels; `needs_text=True` keeps text models (and unknown ones), False unconditional first."""
        choices = self.choices
        if needs_text:
            choices = [choice for choice in choices if choice.text_conditioned is not False]
        elif needs_text is False:
            choices = sorted(choices, key=lambda choice: choice.text_conditioned is True)
        return [choice.label for choice in choices]

    def default_label(self, needs_text: bool | None = None) -> str | None:
        """The first local checkpoint that fits (bundled first), else the first hub id that fits."""
        labels = self.labels(needs_text)
        local = [label for label in labels if self._choices[label].origin in ("bundled", "local")]
        return (local or labels or [None])[0]

    @property
    def local_choices(self) -> list[ModelChoice]:
        return [choice for choice in self.choices if choice.origin in ("bundled", "local")]

    def status_markdown(self) -> str:
        """One paragraph for the top of the page: which checkpoints were found, or what to do."""
        searched = [public_path(folder) for folder in [self.bundled_dir, *self.model_dirs] if folder is not None]
        local = self.local_choices
        if not local:
            return (
                f"**No checkpoints found** under {', '.join(f'`{folder}`' for folder in searched) or 'any folder'}. "
                "Train one (see `docs/app.md`), start the app with `--model-dir` pointing at a training "
                "output, or pick a hub model: it downloads on first use and needs network access "
                "(Stable Audio Open also needs an accepted licence and a login)."
            )
        names = ", ".join(f"`{choice.label.split(' · ')[0]}`" for choice in local)
        return f"{len(local)} local checkpoint(s): {names}. Hub models download on first use."

    def resolve(self, value: str | None) -> ModelChoice:
        """The choice for a picker value: a label (or a listed model's name or hub id), or, with
        `allow_custom`, a typed folder path or hub id. Anything else raises `gr.Error(UNKNOWN_MODEL)`."""
        if value is None or (isinstance(value, str) and value.strip() == ""):
            raise gr.Error("Pick a model first.")
        if not isinstance(value, str) or len(value) > MAX_MODEL_VALUE:
            raise gr.Error(UNKNOWN_MODEL)
        value = value.strip()
        if value in self._choices:
            return self._choices[value]
        for choice in self.choices:
            if value == choice.name:  # "checkpoints/loops", a hub id
                return choice
        # The label without its origin note ("checkpoints/loops"), so nobody has to type the middle dot.
        named = [choice for choice in self.choices if value == choice.name]
        if len(named) == 1:
            return named[0]
        if not self.allow_custom:
            raise gr.Error(UNKNOWN_MODEL)
        return self._resolve_custom(value)

    @staticmethod
    def _resolve_custom(value: str) -> ModelChoice:
        """A typed folder path or hub id (`allow_custom` only: a trusted local user)."""
        folder = Path(value).expanduser()
        try:
            is_folder = folder.is_dir()
        except OSError:  # e.g. a name too long for the file system
            raise gr.Error(UNKNOWN_MODEL) from None
        if is_folder:
            class_name = read_class_name(folder)
            if class_name not in RUNNABLE_CLASSES:
                raise gr.Error(f"{value} is not a checkpoint this app can run (model_index.json class "
                               f"{class_name!r}).")
            return ModelChoice(value, str(folder.resolve()), "custom", RUNNABLE_CLASSES[class_name], folder.name)
        if value.count("/") == 1 and not value.startswith((".", "/", "~")):
            return ModelChoice(value, value, "custom", None, value.split("/")[-1])
        raise gr.Error(f"No model folder at {value!r}, and it is not a hub id like 'owner/name'.")

    # ---- loading and caching ---------------------------------------------------------------

    def _cache_key(self, choice: ModelChoice) -> str:
        # A folder re-saved by a training run is reloaded: its model_index.json is rewritten.
        try:
            stamp = (Path(choice.source) / "model_index.json").stat().st_mtime_ns
        except OSError:  # a hub id, or a folder gone
            stamp = 0
        return f"{choice.source}@{stamp}"

    def is_loaded(self, value: str) -> bool:
        return self._cache_key(self.resolve(value)) in self._loaded

    def load(self, value: str, on_status: Callable[[str], None] | None = None) -> AudioGenerator:
        """The model for a picker value, loaded on first use and cached.

        Raises:
            gr.Error: the hub is unreachable, the model is gated or missing, the folder is gone, or
                the model cannot be run; the message says what to do.
        """
        choice = self.resolve(value)
        key = self._cache_key(choice)
        with self._state_lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
        with self._load_lock:  # one load at a time: two large models loading at once may not fit
            with self._state_lock:
                if key in self._loaded:
                    return self._loaded[key]
            if on_status is not None:
                on_status(f"Loading {choice.label}...")
            device = None if self.device == "auto" else self.device
            try:
                model = as_generator(self.loader(choice.source, device=device))
            except ModelUnavailableError as error:
                raise gr.Error(str(error)) from None
            except FileNotFoundError as error:
                raise gr.Error(f"{choice.label}: {self._public(error, choice)} Press 'Rescan models' to refresh "
                               "the list.") from None
            except Exception as error:  # noqa: BLE001 (a broken or foreign checkpoint must not take the server down)
                raise gr.Error(f"Could not load {choice.label}: {type(error).__name__}: "
                               f"{self._public(error, choice)}") from None
            model.name = choice.name  # its messages name it as the picker does, never by the server's folders
            with self._state_lock:
                self._loaded[key] = model
                while len(self._loaded) > self.max_loaded:
                    self._loaded.popitem(last=False)
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return model

    @staticmethod
    def _public(error: Exception, choice: ModelChoice) -> str:
        """An error's text with the checkpoint's server path replaced by its public name."""
        return str(error).replace(choice.source, choice.name)

    @contextmanager
    def use(self, value: str, on_status: Callable[[str], None] | None = None
            ) -> Iterator[tuple[ModelChoice, AudioGenerator]]:
        """`with registry.use(label) as (choice, model):` the loaded `AudioGenerator`, used by one call at a time."""
        choice = self.resolve(value)
        model = self.load(value, on_status)
        with self._state_lock:
            lock = self._use_locks.setdefault(choice.source, threading.Lock())
        with lock:
            yield choice, model


def default_model_dirs(model_dir: str | os.PathLike | None) -> list[Path]:
    """The model directories to search: `model_dir` when given, else `runs/` when it exists."""
    if model_dir:
        return [Path(model_dir)]
    return [Path("runs")] if Path("runs").is_dir() else []
