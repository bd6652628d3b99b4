"""Convert OpenL3's Keras weights (music, mel256) into the safetensors file `evaluation.openl3` loads.

    pip install h5py openl3 --no-deps    # only to get the .h5 file; openl3 itself needs TensorFlow
    python -m evaluation.convert_openl3 --h5 $(python -c "import openl3, os; \
print(os.path.join(os.path.dirname(openl3.__file__), 'openl3_audio_mel256_music.h5'))")

writes `~/.cache/diffusion-music-studio/openl3/openl3_music_mel256_512.safetensors` (or `--out`),
which the `openl3` embedder finds by default. Layers are matched by their order in the file
(`layer_names`): the first BatchNormalization is the input norm, then conv/BN pairs; Keras kernels
`[kh, kw, in, out]` become torch `[out, in, kh, kw]`. The Kapre mel matrix stored in the file is
compared with the port's and the difference printed. With `--check` and a working `openl3` +
TensorFlow install, embeddings of a test signal from both implementations are compared too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from evaluation.cache import default_cache_dir

DEFAULT_OUT = default_cache_dir().parent / "openl3" / "openl3_music_mel256_512.safetensors"


def read_keras_layers(h5_path: Path) -> list[tuple[str, list[np.ndarray]]]:
    """`(layer name, weight arrays)` in the order the model was built, layers without weights dropped."""
    try:
        import h5py
    except ImportError as error:
        raise SystemExit("converting needs h5py: pip install h5py") from error
    layers = []
    with h5py.File(h5_path, "r") as handle:
        root = handle.get("model_weights", handle)
        for name in root.attrs["layer_names"]:
            name = name.decode() if isinstance(name, bytes) else name
            group = root[name]
            weight_names = [
                w.decode() if isinstance(w, bytes) else w for w in group.attrs["weight_names"]
            ]
            if weight_names:
                layers.append((name, [np.asarray(group[w]) for w in weight_names]))
    return layers


def keras_to_state_dict(
    layers: list[tuple[str, list[np.ndarray]]],
) -> tuple[dict, np.ndarray | None]:
    """Torch state dict for `OpenL3Music`, and Kapre's mel matrix when the file holds it."""
    batch_norms, convs, kapre_mel = [], [], None
    for _name, arrays in layers:
        if len(arrays) == 4 and all(a.ndim == 1 for a in arrays):
            batch_norms.append(arrays)
        elif len(arrays) == 2 and arrays[0].ndim == 4 and arrays[1].ndim == 1:
            convs.append(arrays)
        else:
            kapre_mel = next((a for a in arrays if a.ndim == 2 and 256 in a.shape), kapre_mel)
    if len(batch_norms) != 8 or len(convs) != 8:
        raise SystemExit(
            f"expected 8 BatchNormalization and 8 Conv2D layers, found {len(batch_norms)} and "
            f"{len(convs)}: not the mel256 OpenL3 audio model"
        )
    state = {}
    for index, (gamma, beta, mean, variance) in enumerate(batch_norms):
        prefix = "bn0" if index == 0 else f"bns.{index - 1}"
        state[f"{prefix}.weight"] = torch.from_numpy(gamma)
        state[f"{prefix}.bias"] = torch.from_numpy(beta)
        state[f"{prefix}.running_mean"] = torch.from_numpy(mean)
        state[f"{prefix}.running_var"] = torch.from_numpy(variance)
    for index, (kernel, bias) in enumerate(convs):
        state[f"convs.{index}.weight"] = torch.from_numpy(
            np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
        )
        state[f"convs.{index}.bias"] = torch.from_numpy(bias)
    return {k: v.float().contiguous() for k, v in state.items()}, kapre_mel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation.convert_openl3",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--h5", required=True, help="openl3_audio_mel256_music.h5 from the openl3 package"
    )
    parser.add_argument(
        "--out", default=str(DEFAULT_OUT), help="safetensors file to write (default %(default)s)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="also compare embeddings with the openl3 package (needs TensorFlow)",
    )
    args = parser.parse_args(argv)
    from safetensors.torch import save_file

    from evaluation.openl3 import OpenL3Music

    state, kapre_mel = keras_to_state_dict(read_keras_layers(Path(args.h5)))
    model = OpenL3Music()
    model.load_state_dict(state, strict=True)
    if kapre_mel is not None:
        ours = model.mel_filters.numpy()
        theirs = kapre_mel if kapre_mel.shape == ours.shape else kapre_mel.T
        print(
            f"mel matrix: max |kapre - port| = {np.abs(theirs - ours).max():.3g}", file=sys.stderr
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, args.out, metadata={"source": Path(args.h5).name})
    print(f"wrote {args.out}", file=sys.stderr)
    if args.check:
        import openl3

        from evaluation.synthetic import synthetic_clip

        clip = synthetic_clip(0, 3.0, 48000)
        theirs, _ = openl3.get_audio_embedding(
            clip,
            48000,
            content_type="music",
            input_repr="mel256",
            embedding_size=512,
            hop_size=0.5,
            center=True,
            verbose=False,
        )
        from evaluation.openl3 import openl3_frames

        with torch.no_grad():
            ours = model.eval()(torch.from_numpy(openl3_frames(clip))).numpy()
        error = np.abs(ours - theirs).max() / np.abs(theirs).max()
        print(f"check: max relative difference to openl3 = {error:.3g}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
