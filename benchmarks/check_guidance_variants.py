"""Other rules for combining a guided step's two predictions, measured by `bench_quality` (issue 20, item 3:
do they make fewer noise washes than plain classifier-free guidance?). Not shipped: a development check.

    OMP_NUM_THREADS=1 python -m benchmarks.check_guidance_variants rescale 0.7 -- checkpoints/text --kind text \\
        --split valid --quick --fad --threads 1 --out RESULT.json

The rule replaces `TextToMelPipeline.combine_guidance` for the run; everything after `--` goes to
`benchmarks.bench_quality` unchanged.

- `rescale PHI`: CFG rescale (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed",
  sec. 3.4), diffusers' `rescale_noise_cfg`: the guided prediction's per-item standard deviation brought back to
  the conditional one's, mixed by PHI. Proposed for v-prediction models with a zero-terminal-SNR schedule, as the
  text model is. `rescale 0` is plain guidance.
- `apg R`: adaptive projected guidance (Sadat et al. 2024, "Eliminating Oversaturation and Artifacts of High
  Guidance Scales in Diffusion Models") on the x0 estimate, as the paper applies it (the model predicts v:
  x0 = sqrt(a) x - sqrt(1 - a) v): the guidance update without its component parallel to the conditional x0
  (eta 0), its norm capped at R per item (0: no cap). Written here, not diffusers' `AdaptiveProjectedGuidance`,
  because that one works on the model's output (here v), where the projection means something else.
"""
from __future__ import annotations

import argparse
import sys

import torch
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg

from benchmarks import bench_quality
from models.pipeline_text_to_mel import TextToMelPipeline


def rescaled(phi: float):
    """`combine_guidance` with CFG rescale by `phi` in [0, 1]."""
    def combine(self, latents, timestep, noise_uncond, noise_text, guidance_scale):
        guided = noise_uncond + guidance_scale * (noise_text - noise_uncond)
        return rescale_noise_cfg(guided, noise_text, guidance_rescale=phi)
    return combine


def projected(norm_cap: float):
    """`combine_guidance` with adaptive projected guidance (eta 0) on x0, update norm capped at `norm_cap`."""
    def combine(self, latents, timestep, noise_uncond, noise_text, guidance_scale):
        alpha = self.scheduler.alphas_cumprod[int(timestep.flatten()[0])].to(latents.dtype)
        signal, noise = alpha.sqrt(), (1 - alpha).sqrt()
        x0_text, x0_uncond = signal * latents - noise * noise_text, signal * latents - noise * noise_uncond
        update = x0_text - x0_uncond
        dims = list(range(1, update.dim()))
        if norm_cap > 0:
            update = update * torch.clamp(norm_cap / update.norm(dim=dims, keepdim=True), max=1.0)
        unit = torch.nn.functional.normalize(x0_text.flatten(1), dim=1).view_as(x0_text)
        orthogonal = update - (update * unit).sum(dim=dims, keepdim=True) * unit
        x0 = x0_text + (guidance_scale - 1) * orthogonal
        return (signal * latents - x0) / noise
    return combine


RULES = {"rescale": rescaled, "apg": projected}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    ours, rest = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rule", choices=sorted(RULES), help="rescale: CFG rescale; apg: projected guidance on x0")
    parser.add_argument("value", type=float, help="rescale: phi in [0, 1]; apg: the update's norm cap (0: none)")
    args = parser.parse_args(ours)
    TextToMelPipeline.combine_guidance = RULES[args.rule](args.value)
    return bench_quality.main(rest)


if __name__ == "__main__":
    sys.exit(main())
