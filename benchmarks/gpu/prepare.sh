#!/usr/bin/env bash
# Gathers, on a machine with pip and ../shared, what the GPU benchmarks need on a GPU machine that has torch,
# timm, scipy, pillow, tqdm and matplotlib but no network:
#   .whl/    Python 3.12 wheels of open_clip_torch, ftfy, wcwidth, pycocotools, av
#   .carry/  a subset of ../shared/data (DAVIS-2016 frames for the eigensolver benchmark, real clips for MaskCut)
# Both folders are git-ignored. Copy the checkout with them to the GPU machine and run there, each under 10 minutes:
#   bash benchmarks/gpu/run_all.sh 1     # stage 1 (MaskCut, CLIP)
#   bash benchmarks/gpu/run_all.sh 2     # stages 2-3 (training, segmentation)
set -euo pipefail
cd "$(dirname "$0")/../.."
shared=${1:-../shared}
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
    open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 pycocotools==2.0.11 av==18.1.0
rm -rf .carry && mkdir -p .carry/davis2016 .carry/real-frames
for seq in "$shared"/data/davis2016/JPEGImages/480p/*/; do   # every 10th frame of each sequence
    name=$(basename "$seq"); mkdir -p ".carry/davis2016/$name"
    ls "$seq" | awk 'NR % 10 == 1' | while read -r f; do cp "$seq$f" ".carry/davis2016/$name/"; done
done
for clip in "$shared"/data/real-frames/*/; do                 # the first 12 frames of each real clip
    name=$(basename "$clip"); mkdir -p ".carry/real-frames/$name"
    ls "$clip" | head -12 | while read -r f; do cp "$clip$f" ".carry/real-frames/$name/"; done
done
du -sh .whl .carry
