#!/usr/bin/env bash
# The CUDA engine's checks and benchmarks on a GPU machine, in one go (each machine start costs
# minutes, so everything that needs the GPU runs here):
#   1. native/check/run.sh: our cuBLASLt / NCCL declarations against the real headers;
#   2. the GPU tests (parity with the tfjs engine for every optimizer; fp32 vs --amp on real data);
#   3. the Outbrain benchmark: bf16 and fp16 AMP, TF32, from device memory and from shards on disk;
#   4. the PyTorch opponent (../shared/bench/torch_wnd.py, packed into .device/bench/).
# Usage (through the device tool): source .device/on-device.sh; bash scripts/gpu-suite.sh [tests|bench|all]
# Logs go to $OUT (the device tool's output folder) or /tmp/wndc-gpu-suite.
set -uo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
out="${OUT:-/tmp/wndc-gpu-suite}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
# Build the addon here: with this machine's NCCL device headers (CUDA_INCLUDE_DIRS, from
# on-device.sh) compiled in, the large tables' rows can be read from the peers with NCCL 2.28.
node scripts/build-native.mjs 2>&1 | grep -E "device headers|built|up to date|error" | tee "$out/build.txt"

if [[ "$what" == all || "$what" == tests ]]; then
  bash native/check/run.sh 2>&1 | tail -20 | tee "$out/api-check.txt"
  timeout 240 node --import tsx --test --test-reporter=spec test/cuda-build.test.ts test/cuda-engine.test.ts test/cuda-amp.test.ts > "$out/tests.txt" 2>&1
  grep -E "^ℹ|✖|# SKIP|skipped" "$out/tests.txt" | head -40
fi

if [[ "$what" == all || "$what" == bench ]]; then
  spec=examples/outbrain/outbrain.wnd
  common=(--engine cuda --benchmark --global_batch_size 131072 --synthetic-rows 262144 --benchmark-steps 60 --benchmark-warmup-steps 10)
  for variant in "--amp bf16 --profile" "--amp fp16" "" "--amp bf16 --benchmark-source disk"; do
    echo "== wndc run $spec ${common[*]} $variant" | tee -a "$out/bench.txt"
    # shellcheck disable=SC2086
    timeout 150 node --import tsx cli/wndc.ts run "$spec" "${common[@]}" $variant 2>&1 | tail -4 | tee -a "$out/bench.txt"
  done
  if [[ -f .device/bench/torch_wnd.py ]]; then
    echo "== torch_wnd.py 131072" | tee -a "$out/bench.txt"
    PYTHONUNBUFFERED=1 timeout 200 python3 .device/bench/torch_wnd.py 131072 2>&1 | tail -5 | tee -a "$out/bench.txt"
  fi
fi
