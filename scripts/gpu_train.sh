#!/usr/bin/env bash
# Train several recipes side by side on one GPU within a wall-clock budget, then check the CUDA
# inference paths (benchmarks/gpu.py). This made the bundled LAformer-small models on one H100:
#
#   python3 scripts/pack_photos.py deblur_small dehaze_small denoise_small -o .gpu_data
#   OUT=results/ scripts/gpu_train.sh 420 deblur_small dehaze_small denoise_small
#
# Options for `irx train` go in IRX_TRAIN_ARGS (e.g. "--init weights.safetensors"); GPU_CHECKS=0
# skips the benchmark.
#
# Each recipe runs as its own process with `--time-limit SECONDS` (the trainer measures its speed
# and plans its cosine schedule to end in time). A recipe is read from the pack folder ($IRX_PACK,
# default .gpu_data) when scripts/pack_photos.py wrote one there, else from irx/train/configs.
# Into $OUT (default runs/gpu_out) go, per recipe, the exported weights and a tar.gz of its log,
# output and zoo record, plus gpu.json and session.log: few files, as rented machines return few.
set -uo pipefail
cd "$(dirname "$0")/.."
if [[ $# -lt 2 ]]; then
    echo "usage: $0 SECONDS RECIPE..." >&2
    exit 2
fi
limit="$1"
shift
pack="${IRX_PACK:-.gpu_data}"
out="${OUT:-runs/gpu_out}"
mkdir -p "$out" runs
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
log="$out/session.log"
train=(python3 -c 'import typer; from irx.cli.train import train_command; typer.run(train_command)')
{
    date -Is
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
    df -h /dev/shm | tail -n 1
} >> "$log" 2>&1

recipe_of() { if [[ -f "$pack/$1.toml" ]]; then echo "$pack/$1.toml"; else echo "$1"; fi; }

# Data-loader workers hand batches over through /dev/shm; a small one crashes them.
shm_mib=$(df -m --output=avail /dev/shm 2>/dev/null | tail -n 1 | tr -d ' ')
if [[ -z "$shm_mib" || "$shm_mib" -lt 4096 ]] && compgen -G "$pack/*.toml" > /dev/null; then
    echo "small /dev/shm (${shm_mib:-?} MiB): data loading in the main processes" >> "$log"
    sed -i 's/^num_workers = .*/num_workers = 0/' "$pack"/*.toml
fi

pids=()
for name in "$@"; do
    # The trainer stops itself at the limit; `timeout` is the backstop for a hung process.
    timeout -s INT $((limit + 90)) "${train[@]}" "$(recipe_of "$name")" --time-limit "$limit" ${IRX_TRAIN_ARGS:-} \
        > "runs/$name.stdout.log" 2>&1 &
    pids+=($!)
    echo "$(date -Is) started $name (pid $!)" >> "$log"
done
for i in "${!pids[@]}"; do
    wait "${pids[$i]}"
    status=$?
    echo "$(date -Is) ${*:$((i + 1)):1} exited with $status" >> "$log"
done

# Collect first: the benchmark below may overrun the caller's limit, the results must not be lost.
for name in "$@"; do
    recipe="$(recipe_of "$name")"
    read -r run_dir export_name < <(python3 -c 'import sys
from irx.train.config import load_config
c = load_config(sys.argv[1]); print(c.output.dir, c.output.export_name)' "$recipe")
    if [[ ! -f "irx/zoo/weights/$export_name.safetensors" && -f "$run_dir/latest.pt" ]]; then
        "${train[@]}" "$recipe" --export-only >> "runs/$name.stdout.log" 2>&1  # a run that was killed
    fi
    cp "irx/zoo/weights/$export_name.safetensors" "$out/" 2>> "$log"
    tar czf "$out/$name.tar.gz" "runs/$name.stdout.log" "$run_dir/log.csv" "irx/zoo/weights/$export_name.json" \
        "$recipe" 2>> "$log"
    grep -E "^irx train|^done|^stopped" "runs/$name.stdout.log" | sed "s/^/$name: /" >> "$log"
done

if [[ "${GPU_CHECKS:-1}" != 0 ]]; then
    timeout 90 python3 benchmarks/gpu.py -o "$out/gpu.json" --seconds 0.5 >> "$log" 2>&1
fi
cat "$log"
