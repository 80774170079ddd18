#!/usr/bin/env bash
# Data parallelism on a machine of several GPUs, in one go (issue 6's checks):
#   1. test/cuda-distributed.test.ts: 2 ranks over NCCL give one GPU's weights (1e-5);
#   2. the scaling benchmark: Outbrain, global batch 131,072, --amp, on 1 GPU, on N GPUs (the
#      tables' rows read from the peers where the GPUs reach each other), and on N GPUs with the
#      large tables' rows all-gathered as records (WNDC_CUDA_EXCHANGE=records), each `runs` times (the figures
#      to report are the medians), then N GPUs with --profile, then N GPUs with NCCL forced onto
#      sockets (a stand-in for several hosts, so records: no GPU reads another's memory there).
# Usage (through the device tool): source .device/on-device.sh; bash scripts/gpu-scaling.sh [N] [runs] [steps]
# (defaults: every GPU, 5 runs, 200 measured steps a run: one GPU's runs of 60 steps varied by up to
# 3% between runs in session 9, as much as the ratio's distance from its target).
# Logs go to $OUT (the device tool's output folder) or /tmp/wndc-gpu-scaling.
set -uo pipefail
cd "$(dirname "$0")/.."
gpus="${1:-$(nvidia-smi -L | wc -l)}"
runs="${2:-5}"
steps="${3:-200}"
out="${OUT:-/tmp/wndc-gpu-scaling}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
# Build the addon here: with this machine's NCCL device headers (CUDA_INCLUDE_DIRS, from
# on-device.sh) compiled in, the large tables' rows can be read from the peers with NCCL 2.28.
node scripts/build-native.mjs 2>&1 | grep -E "device headers|built|up to date|error" | tee "$out/build.txt"
export NCCL_NVLS_ENABLE=0

timeout 300 node --import tsx --test --test-reporter=spec test/cuda-distributed.test.ts > "$out/distributed-test.txt" 2>&1
grep -E "^ℹ (tests|pass|fail|skipped)|✖" "$out/distributed-test.txt" | head -20

spec=examples/outbrain/outbrain.wnd
common=(--engine cuda --amp --benchmark --global_batch_size 131072 --synthetic_rows 262144 --benchmark_steps "$steps" --benchmark_warmup_steps 10)
bench() {
  echo "== $*" | tee -a "$out/scaling.txt"
  timeout 120 "$@" 2>&1 | grep -E "examplesPerSecond|rror" | head -5 | tee -a "$out/scaling.txt"
}
for i in $(seq "$runs"); do
  bench node --import tsx cli/wndc.ts run "$spec" "${common[@]}"
  bench node --import tsx cli/wndc.ts run "$spec" "${common[@]}" --gpus "$gpus"
  bench env WNDC_CUDA_EXCHANGE=records node --import tsx cli/wndc.ts run "$spec" "${common[@]}" --gpus "$gpus"
done
bench node --import tsx cli/wndc.ts run "$spec" "${common[@]}" --gpus "$gpus" --profile
bench env NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 WNDC_CUDA_EXCHANGE=records node --import tsx cli/wndc.ts run "$spec" "${common[@]}" --gpus "$gpus"

# Medians per command line (examples/s), and the scaling against one GPU.
node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n");
const runs = new Map();
let label = null;
for (const line of lines) {
  if (line.startsWith("== ")) { label = line.slice(3).replace(/^env /, "").replace(/node --import tsx cli\/wndc\.ts run \S+ --engine cuda --amp --benchmark .*--benchmark_warmup_steps 10/, "").replace(/\s+/g, " ").trim() || "1 GPU"; continue; }
  const m = /"examplesPerSecond":(\d+)/.exec(line);
  if (m && label !== null && !label.includes("--profile")) (runs.get(label) ?? runs.set(label, []).get(label)).push(Number(m[1]));
}
const median = (v) => { const s = [...v].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const one = runs.has("1 GPU") ? median(runs.get("1 GPU")) : NaN;
for (const [name, v] of runs) console.log(`${name}: median ${(median(v) / 1e6).toFixed(2)} M examples/s over ${v.length} run(s)${name === "1 GPU" ? "" : `, ${(median(v) / one).toFixed(3)}x one GPU`}`);
' "$out/scaling.txt" | tee "$out/summary.txt"
