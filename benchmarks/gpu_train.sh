#!/usr/bin/env bash
# The GPU training path, measured in one call on a lent H100/H200 (no network there).
#
#   bash benchmarks/gpu_train.sh            # from the repository root; writes everything under $OUT
#                                           # (default benchmarks/results/gpu_run) and prints a summary
#
# What it runs, in order, each step under its own time limit so that a slow step cannot eat the rest
# (at most 565 s of limits in all, under the 600 s of one device call; GPU_TRAIN_QUICK=1: ~6 minutes):
#   1. the device and versions (nvidia-smi, torch, triton);
#   2. the kernels' parity tests on the GPU (tests/test_kernels_*.py with TRITON_INTERPRET=0) and
#      benchmarks/gpu_parity.py (fp32/bf16 against an fp64 reference);
#   3. the InfoNCE kernel benchmark, quick sweep (benchmarks/bench_infonce.py --quick), then the kernel
#      alone again with SSLCOOKBOOK_AUTOTUNE=1 (tiles timed on a short list per size; $OUT/autotune/):
#      autotuning becomes the default only if this shows it pays;
#   4. bench_train.py --device cuda on generated CIFAR-sized data (synthetic:50000, no kNN, fixed
#      steps): SimCLR, BYOL and DINO on the small CNN at batch 256, default settings against the fast
#      ones (channels_last, bf16 autocast, view_forward "auto" = one concatenated forward on a GPU);
#   5. the full SimCLR recipe's model (ResNet-18 CIFAR stem, batch 512), fast settings, eager and
#      torch.compile: the step rate and the extrapolated time of 200 CIFAR-10 epochs, which decides
#      whether a full run fits the device budget (the goal: <= 5 minutes).
# Nothing here needs lightly or the CIFAR-10 files; the CPU comparison with lightly is
# benchmarks/results/train_cpu_*.md. Copy $OUT/*.md and $OUT/*.json into benchmarks/results/ and
# commit them with the device name in the file name (bench_train already puts it in the header).
set -u
OUT=${OUT:-benchmarks/results/gpu_run}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
PY=${PY:-python3}
QUICK=${GPU_TRAIN_QUICK:-0}
STEPS=$([ "$QUICK" = 1 ] && echo 30 || echo 100)
step() {  # step NAME LIMIT_S COMMAND...: run with a limit, log to $OUT/NAME.log, say how it ended
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "[$name] rc=$rc $((SECONDS - t0)) s: $(tail -n 1 "$OUT/$name.log")" | tee -a "$OUT/summary.txt"
}

: > "$OUT/summary.txt"
step device 20 bash -c "nvidia-smi; $PY -c 'import torch, triton; print(torch.__version__, triton.__version__, torch.cuda.get_device_name(0))'"
step parity_tests 100 $PY -m pytest tests/test_kernels_infonce.py tests/test_kernels_dino.py tests/test_kernels_siglip.py -q -x -p no:cacheprovider
[ "$QUICK" = 1 ] || step gpu_parity 60 $PY benchmarks/gpu_parity.py
[ "$QUICK" = 1 ] || step bench_infonce 60 $PY benchmarks/bench_infonce.py --quick --out-dir "$OUT" --time-budget-s 45
[ "$QUICK" = 1 ] || step bench_infonce_autotune 45 env SSLCOOKBOOK_AUTOTUNE=1 $PY benchmarks/bench_infonce.py \
  --quick --backends triton --out-dir "$OUT/autotune" --time-budget-s 35
step train_small_cnn 100 $PY benchmarks/bench_train.py synthetic:50000 --device cuda --steps "$STEPS" --no-knn \
  --recipes simclr byol dino --pipelines lib lib_fast --out "$OUT/train_cuda_small_cnn"
step train_resnet18 60 $PY benchmarks/bench_train.py synthetic:50000 --device cuda --steps "$STEPS" --no-knn \
  --recipes simclr --pipelines lib lib_fast --backbone resnet18_cifar --batch 512 --out "$OUT/train_cuda_resnet18"
step train_resnet18_compile 120 $PY benchmarks/bench_train.py synthetic:50000 --device cuda --steps "$STEPS" \
  --no-knn --recipes simclr --pipelines lib_fast --compile --backbone resnet18_cifar --batch 512 \
  --out "$OUT/train_cuda_resnet18_compile"
cp benchmarks/results/kernel_parity_* "$OUT/" 2>/dev/null
# each training run's step rate and extrapolated 200-epoch time (bench_train prints one line per run)
grep -h "^[a-z]* / [a-z_]*: .*extrapolated$" "$OUT"/train_*.log 2>/dev/null | tee -a "$OUT/summary.txt" > /dev/null
cat "$OUT/summary.txt"
cat "$OUT"/train_cuda_*.md 2>/dev/null
