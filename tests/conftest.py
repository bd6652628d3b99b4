"""Shared test set-up: tests never touch the network and run on few CPU threads."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch (and BLAS) thread for a module's tests, restored after: small ops on a shared, busy CPU
    run many times faster on one thread (see `evaluation.features.limit_threads`)."""
    from evaluation.features import limit_threads

    with limit_threads(1):
        yield
