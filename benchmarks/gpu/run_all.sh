#!/usr/bin/env bash
# Every GPU measurement of benchmarks/RESULTS.md, in runs of under 10 minutes each (see prepare.sh):
#   bash benchmarks/gpu/run_all.sh 1   stage 1: eigensolvers, MaskCut frames/s (eigh and subspace), CLIP masks/s
#   bash benchmarks/gpu/run_all.sh 2   stages 2-3: training it/s + memory, segment fps, the CUDA/bf16/nccl
#                                      training path through torchrun -> uvis segment -> uvis eval, and
#                                      uvis pseudo-label on 1 process vs torchrun on every GPU (scaling.json)
#   bash benchmarks/gpu/run_all.sh 3   the test suite with a GPU present (optional)
# Each step has its own time limit (their sum stays under 10 minutes), so one slow step cannot take the others'
# time. Output, in the folder $OUT (default ./gpu-out): part<N>.log (everything printed) and one JSON per
# measurement that writes one.
# SMOKE=1 runs the same steps tiny and on the CPU, to check the script itself anywhere.
set -uo pipefail
cd "$(dirname "$0")/../.."
part=${1:?usage: run_all.sh 1|2}
out=${OUT:-gpu-out}
mkdir -p "$out"
log="$out/part$part.log"
json_dir=$out
export PYTHONUNBUFFERED=1
PY=${PY:-python3}  # the device's python3 holds torch

if ! "$PY" -c "import open_clip, pycocotools, av" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "wheel install failed" | tee -a "$log"; exit 1; }
    export PYTHONPATH="$PWD/src:/tmp/site"
else
    export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi
export UVIS_BENCH_FRAMES="$PWD/.carry/real-frames"
davis="$PWD/.carry/davis2016"
[ -d "$davis" ] || davis="$PWD/../shared/data/davis2016"

if [ "${SMOKE:-0}" = 1 ]; then
    dev=cpu; vit="tiny"; eig_frames=2; mc_frames=2; mc_batch=1; mc_big=2; nm_frames=1; nm_batch=8
    tr_config=tiny; tr_h=64; tr_w=96; tr_batch=2; tr_iters=2; sg_frames=8; sg_model=--tiny-model
    ddp_steps=3; backend_device=cpu
    sc="--nproc 1 2 --backbone tiny --videos 2 --frames 2 --size 48x64 --resolution 32 --batch-size 2"
else
    dev=cuda; vit="dino_vitb8 dino_vits8"; eig_frames=32; mc_frames=32; mc_batch=16; mc_big=512; nm_frames=200
    nm_batch=256; tr_config=default; tr_h=360; tr_w=640; tr_batch=8; tr_iters=10; sg_frames=300
    sg_model=--default-model; ddp_steps=200; backend_device=cuda
    sc="--nproc 1 all --backbone dino_vitb8 --videos 16 --frames 12 --size 480x854 --resolution 480 --batch-size 16"
fi

step() {  # step NAME TIMEOUT_S COMMAND...: run one measurement, keep going whatever happens
    local name=$1 limit=$2; shift 2
    echo "=== $name: $*" | tee -a "$log"
    local t0=$SECONDS
    timeout "$limit" "$@" >>"$log" 2>&1
    local rc=$?
    echo "=== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$log"
}

{ date; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  "$PY" -c "import torch, sys; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  "$PY" -c "import timm; print('timm', timm.__version__, '(open_clip 3.3.0 declares timm>=1.0.17)')"
} >>"$log" 2>&1

if [ "$part" = 1 ]; then
    step eigensolvers 90 "$PY" benchmarks/maskcut_eigensolvers.py --frames "$eig_frames" --device "$dev" \
        --batch-size 16 --solvers lanczos torch-eigh subspace --davis "$davis"
    for b in $vit; do
        step "maskcut-$b-eigh" 100 "$PY" benchmarks/maskcut.py --device "$dev" --backbones "$b" \
            --frames "$mc_frames" --batch-size "$mc_batch" --warmup 1 --json "$json_dir/maskcut-$b-eigh.json"
        step "maskcut-$b-subspace" 60 "$PY" benchmarks/maskcut.py --device "$dev" --backbones "$b" \
            --solver subspace --frames "$mc_big" --batch-size 32 --warmup 1 --json "$json_dir/maskcut-$b-subspace.json"
    done
    step "maskcut-throughput" 60 "$PY" benchmarks/maskcut.py --device "$dev" --backbones ${vit%% *} \
        --solver subspace --frames "$mc_big" --batch-size 32 --warmup 1 --no-breakdown \
        --json "$json_dir/maskcut-throughput.json"
    step maskcut-resize 30 "$PY" benchmarks/maskcut_resize.py --device "$dev" --batch-size "$mc_batch" --engine torch
    step naming 60 "$PY" benchmarks/naming.py --device "$dev" --frames "$nm_frames" --masks-per-frame 8 \
        --batch-size "$nm_batch" --repeats 3
elif [ "$part" = 2 ]; then
    step train 120 "$PY" benchmarks/train.py --device "$dev" --config "$tr_config" --height "$tr_h" --width "$tr_w" \
        --batch-size "$tr_batch" --iters "$tr_iters"
    step segment 150 "$PY" benchmarks/segment.py --device "$dev" --frames "$sg_frames" $sg_model \
        --score-threshold 0 --json "$json_dir/segment.json"
    work=$(mktemp -d)
    step ddp-data 30 "$PY" -c "
from uvis.data.synthetic import make_dataset
from uvis.train import pseudo_labels_from_dataset
d = make_dataset('$work/data', num_videos=4, num_frames=8, height=96, width=128, num_objects=3, seed=0)
pseudo_labels_from_dataset(d).save('$work/pseudo.json')"
    step ddp-train 90 "$PY" -m torch.distributed.run --nproc-per-node 1 -m uvis train --data "$work/data" \
        --pseudo "$work/pseudo.json" --out "$work/run" --preset tiny --steps "$ddp_steps" --device "$backend_device" \
        --no-progress
    step ddp-segment 45 "$PY" -m uvis segment "$work/data" --model "$work/run" --out "$work/seg" \
        --device "$backend_device" --no-progress --no-overlay --score-threshold 0.1
    step ddp-eval 20 "$PY" -m uvis eval "$work/data/annotations.json" "$work/seg/results.json"
    # shellcheck disable=SC2086  # $sc holds several arguments
    step scaling 120 "$PY" benchmarks/scaling.py --device "$backend_device" $sc --json "$json_dir/scaling.json"
else
    step tests 540 "$PY" -m pytest -q -p no:cacheprovider tests
fi

