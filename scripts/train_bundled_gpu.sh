#!/usr/bin/env bash
# Train both bundled models (loops: unconditional on the drum clips; text: text + timing on every clip)
# from a data pack on one GPU, side by side, within MINUTES; then tar each checkpoint's float16 pipeline
# (no training state: each gzipped tar is under 16 MiB) as OUT_DIR/<model>-checkpoint-<step>.tar.gz, plus logs.tar.
#
#   bash scripts/train_bundled_gpu.sh data/packs/corpus.npz runs/gpu 7.5
#   MIXED=no bash scripts/train_bundled_gpu.sh PACK OUT 0.2 --cpu --max-steps 4 --batch-size 4   # CPU smoke test
#
# Checkpoints are saved half-way and at the end (both are returned, to pick by measurement).
# Extra arguments go to both `python -m training.train_pack` runs. docs/training.md explains the recipe.
# To continue shipped models instead of starting from scratch, name them (fresh optimizer, step count kept):
#   LOOPS_INIT=checkpoints/loops TEXT_INIT=checkpoints/text bash scripts/train_bundled_gpu.sh PACK OUT 8
# MODELS picks which to train (default "loops text"). The key-conditioned text model (issue 23): a pack with
# key labels (every pack has them) and key-shifted copies (scripts/build_pack.py --key-shifts N) gives the text model a key embedding,
# added to a TEXT_INIT checkpoint without one (zero-initialised: it starts from that checkpoint):
#   MODELS=text TEXT_INIT=checkpoints/text bash scripts/train_bundled_gpu.sh data/packs/corpus-keys.npz runs/gpu 15
set -euo pipefail
PACK=${1:?usage: train_bundled_gpu.sh PACK OUT_DIR [MINUTES] [extra train_pack args]}
OUT=${2:?usage: train_bundled_gpu.sh PACK OUT_DIR [MINUTES] [extra train_pack args]}
MINUTES=${3:-7.5}
shift $(( $# < 3 ? $# : 3 ))
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
HALF=$("$PYTHON" -c "print($MINUTES / 2)")
MODELS=${MODELS:-loops text}
loops_init=(); text_init=()
[ -n "${LOOPS_INIT:-}" ] && loops_init=(--init-from "$LOOPS_INIT")
[ -n "${TEXT_INIT:-}" ] && text_init=(--init-from "$TEXT_INIT")
common=(--mixed-precision "${MIXED:-bf16}" --max-minutes "$MINUTES" --checkpoint-minutes "$HALF"
        --keep-checkpoints 3 --log-every 100 --quiet)
loops=""; text=""
if [[ " $MODELS " == *" loops "* ]]; then
    "$PYTHON" -m training.train_pack "$PACK" --model unconditional --subsets drums --output-dir "$OUT/loops" \
        --batch-size "${LOOPS_BATCH:-64}" --dropout 0.1 "${loops_init[@]}" "${common[@]}" "$@" > "$OUT/loops.log" 2>&1 &
    loops=$!
fi
if [[ " $MODELS " == *" text "* ]]; then
    "$PYTHON" -m training.train_pack "$PACK" --model text --output-dir "$OUT/text" \
        --batch-size "${TEXT_BATCH:-128}" "${text_init[@]}" "${common[@]}" "$@" > "$OUT/text.log" 2>&1 &
    text=$!
fi
[ -n "$loops$text" ] || { echo "MODELS must name loops and/or text, got '$MODELS'"; exit 2; }
status=0
[ -z "$loops" ] || wait $loops || { status=1; echo "loops training failed:"; tail -n 20 "$OUT/loops.log"; }
[ -z "$text" ] || wait $text || { status=1; echo "text training failed:"; tail -n 20 "$OUT/text.log"; }
for run in loops text; do
    for checkpoint in "$OUT/$run"/checkpoint-*; do
        [ -d "$checkpoint" ] || continue
        tar -C "$checkpoint" --exclude training_state -czf "$OUT/$run-$(basename "$checkpoint").tar.gz" .
    done
    cp "$OUT/$run/log.jsonl" "$OUT/$run-log.jsonl" 2>/dev/null || true
done
tar -C "$OUT" -cf "$OUT/logs.tar" loops.log text.log loops-log.jsonl text-log.jsonl 2>/dev/null || true
ls -la "$OUT"
exit $status
