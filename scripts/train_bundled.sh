#!/usr/bin/env bash
# Launch irx's bundled training recipes in the background, resumably.
#
#   scripts/train_bundled.sh denoise dejpeg upscale_x2    # start (or resume) three runs
#   scripts/train_bundled.sh status                       # last log line of every run
#   scripts/train_bundled.sh all                          # every bundled recipe (not the ablations)
#
# Each run writes runs/<name>/ (latest.pt, log.csv, progress.png) and appends its output to
# runs/<name>/stdout.log; its process id is in runs/<name>/pid. A run with a checkpoint is
# continued with --resume, so the same command restarts interrupted trainings. Run it from
# the repository root (the recipes find the photos at ../shared/data/photos/train unless
# IRX_DATA_ROOT is set). Extra options for `irx train` go in IRX_TRAIN_ARGS, e.g.
# IRX_TRAIN_ARGS="--iterations 3000".
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
RECIPES_DIR="irx/train/configs"
BUNDLED="denoise dejpeg upscale_x2 upscale_x4 deblur derain dehaze lowlight"

if [[ $# -eq 0 ]]; then
    echo "usage: $0 RECIPE... | all | status   (recipes: $(ls $RECIPES_DIR | sed 's/\.toml$//' | tr '\n' ' '))" >&2
    exit 2
fi

alive() { [[ -f "$1/pid" ]] && kill -0 "$(cat "$1/pid")" 2>/dev/null; }

if [[ "$1" == "status" ]]; then
    for dir in runs/*/; do
        dir="${dir%/}"
        [[ -f "$dir/stdout.log" ]] || continue
        state="stopped"
        alive "$dir" && state="running"
        printf '%-28s %-8s %s\n' "$(basename "$dir")" "$state" "$(grep '^step' "$dir/stdout.log" | tail -n 1)"
    done
    exit 0
fi

names=("$@")
[[ "$1" == "all" ]] && read -r -a names <<< "$BUNDLED"

# `python -m irx train` once the package has its __main__; else call the command directly.
if [[ -f irx/__main__.py ]]; then
    runner=("$PYTHON" -m irx train)
else
    runner=("$PYTHON" -c 'import typer; from irx.cli.train import train_command; typer.run(train_command)')
fi

for name in "${names[@]}"; do
    if [[ ! -f "$RECIPES_DIR/$name.toml" ]]; then
        echo "no recipe $RECIPES_DIR/$name.toml; skipped" >&2
        continue
    fi
    dir="runs/$name"
    mkdir -p "$dir"
    if alive "$dir"; then
        echo "$name: already running (pid $(cat "$dir/pid")); skipped" >&2
        continue
    fi
    args=("$name")
    [[ -f "$dir/latest.pt" ]] && args+=(--resume)
    # shellcheck disable=SC2206  # IRX_TRAIN_ARGS is meant to be split into words
    args+=(${IRX_TRAIN_ARGS:-})
    echo "=== $(date -Is) ${runner[*]} ${args[*]}" >> "$dir/stdout.log"
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1 \
        nohup "${runner[@]}" "${args[@]}" >> "$dir/stdout.log" 2>&1 < /dev/null &
    echo $! > "$dir/pid"
    echo "$name: started (pid $!), log $dir/stdout.log"
done
