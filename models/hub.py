"""Hub failures explained: what to do when a model cannot be fetched (offline, gated, missing)."""
from __future__ import annotations

from huggingface_hub.errors import (
    GatedRepoError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
)


class ModelUnavailableError(RuntimeError):
    """The model could not be fetched: the hub is unreachable, or the repo is gated or missing."""


# Failures that mean "no network": huggingface_hub's own, Python's, and those of the HTTP clients
# huggingface_hub and diffusers have used (requests in older releases, httpx in newer).
_NETWORK_ERRORS = (OfflineModeIsEnabled, LocalEntryNotFoundError, ConnectionError, TimeoutError)
_HTTP_MODULES = {"httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3"}


def explain_unavailable(name: str, error: BaseException) -> ModelUnavailableError | None:
    """A `ModelUnavailableError` saying what to do when `error` (from loading `name`) comes from
    the hub being unreachable or refusing access; None for any other failure."""
    causes = []
    cause: BaseException | None = error
    while cause is not None and cause not in causes:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__

    def hub_said(kind: type) -> BaseException | None:
        return next((c for c in causes if isinstance(c, kind)), None)

    if (gated := hub_said(GatedRepoError)) is not None:
        return ModelUnavailableError(
            f"{name!r} is gated on the Hugging Face Hub and this account has no access to it. "
            f"Accept its licence at https://huggingface.co/{name}, log in with `huggingface-cli "
            f"login` (or `hf auth login`, or set HF_TOKEN), then try again. The hub said: {gated}"
        )
    if (missing := hub_said(RepositoryNotFoundError)) is not None:
        return ModelUnavailableError(
            f"{name!r} was not found on the Hugging Face Hub, or it is private. Check the id, or "
            f"log in with `huggingface-cli login` if you have access. The hub said: {missing}"
        )
    network_error = next(
        (
            c
            for c in causes
            if isinstance(c, _NETWORK_ERRORS) or type(c).__module__.split(".")[0] in _HTTP_MODULES
        ),
        None,
    )
    if network_error is not None:
        return ModelUnavailableError(
            f"Could not load {name!r}: the Hugging Face Hub is unreachable (no network, or "
            "HF_HUB_OFFLINE=1) and the model is not in the local cache. Be online once to download "
            f"it (for a gated repo, first accept its licence on its hub page and log in with "
            "`huggingface-cli login`), or pass a local folder with the "
            f"same layout. Cause: {network_error}"
        )
    return None
