"""Cross-check: VGGish and PANN FAD from the `frechet-audio-distance` package vs this project's
torch ports, on the same two folders. Target: equal to 1e-3 relative.

It needs the package's own environment (it pins numpy<2 and pulls its own torch; see
requirements-eval.txt) with this repository importable, and the network on first use (the package
downloads VGGish from torch.hub and PANN from Zenodo; ours reads the same files from the torch.hub
cache). Run from the repository root:

    python -m venv .venv-fad && .venv-fad/bin/pip install -r requirements-eval.txt
    .venv-fad/bin/python -m benchmarks.crosscheck_fad_package REF_DIR EVAL_DIR \\
        --out reports/fad_crosscheck.json

Protocols compared like with like:
- VGGish: the package (and Google's FAD, and the figures in MusicGen's model card) fits the
  Gaussians to every 0.96 s frame embedding of every file; so does `frame_level_vggish_fad` here,
  with our port. The project's `vggish` embedder pools each clip to its mean frame first (one
  vector per clip, like every embedder here); that clip-level FAD is printed too, and is NOT
  comparable with published VGGish numbers (`python -m evaluation fad --frame-level` is).
- PANN: the package embeds each file whole (one 2048-d vector per clip), as `pann-cnn14-16k` does.
The result table (markdown) is written next to `--out`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evaluation.compare import frame_level_fad
from evaluation.embedders import get_embedder
from evaluation.embedding import embed_directory
from evaluation.fad import fad


def frame_level_vggish_fad(reference_dir: Path, evaluated_dir: Path) -> float:
    """FAD over all 0.96 s VGGish frame embeddings (the package's / Google's protocol), our port."""
    embedder = get_embedder("vggish")
    reference = embed_directory(embedder, reference_dir, progress=False)
    evaluated = embed_directory(embedder, evaluated_dir, progress=False)
    return frame_level_fad(embedder, reference, evaluated)["value"]


def package_fad(model_name: str, reference_dir: Path, evaluated_dir: Path) -> float:
    from frechet_audio_distance import FrechetAudioDistance

    scorer = FrechetAudioDistance(
        model_name=model_name,
        sample_rate=16000,
        use_pca=False,
        use_activation=False,
        verbose=False,
    )
    return float(scorer.score(str(reference_dir), str(evaluated_dir)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.crosscheck_fad_package",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("reference", help="folder of reference audio")
    parser.add_argument("evaluated", help="folder of audio to judge")
    parser.add_argument(
        "--out",
        default="reports/fad_crosscheck.json",
        help="JSON result; a .md table is written beside it (default %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        import frechet_audio_distance
    except ImportError:
        print(
            "the frechet-audio-distance package is not installed in this environment; "
            "see requirements-eval.txt (it needs its own venv)",
            file=sys.stderr,
        )
        return 2
    reference, evaluated = Path(args.reference), Path(args.evaluated)
    rows = []
    ours = frame_level_vggish_fad(reference, evaluated)
    theirs = package_fad("vggish", reference, evaluated)
    rows.append({"model": "VGGish (frame level)", "package": theirs, "ours": ours})
    pann = get_embedder("pann-cnn14-16k")
    ours = fad(
        embed_directory(pann, reference, progress=False).embeddings,
        embed_directory(pann, evaluated, progress=False).embeddings,
    )
    rows.append(
        {
            "model": "PANN Cnn14 16 kHz",
            "package": package_fad("pann", reference, evaluated),
            "ours": ours,
        }
    )
    vggish = get_embedder("vggish")
    clip_level = fad(
        embed_directory(vggish, reference, progress=False).embeddings,
        embed_directory(vggish, evaluated, progress=False).embeddings,
    )
    for row in rows:
        row["relative_difference"] = abs(row["ours"] - row["package"]) / max(
            abs(row["package"]), 1e-12
        )
        row["within_1e-3"] = row["relative_difference"] <= 1e-3
    result = {
        "reference": str(reference),
        "evaluated": str(evaluated),
        "rows": rows,
        "vggish_clip_level_fad_ours": clip_level,
        "package_version": getattr(frechet_audio_distance, "__version__", "unknown"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    table = [
        "| model | frechet-audio-distance | ours | relative difference | within 1e-3 |",
        "|---|---|---|---|---|",
    ]
    table += [
        f"| {r['model']} | {r['package']:.6g} | {r['ours']:.6g} | {r['relative_difference']:.2e} | {r['within_1e-3']} |"
        for r in rows
    ]
    out.with_suffix(".md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    return 0 if all(r["within_1e-3"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
