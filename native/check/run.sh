#!/usr/bin/env bash
# Checks wndc's cuBLASLt and NCCL declarations (native/src/cublaslt_api.h, nccl_api.h) against the
# real cublasLt.h and nccl.h: compiles native/check/api_check.cpp with -fsyntax-only, where every
# enumerator, struct size and function shape is a static_assert. Needs the real headers, so it runs
# on a GPU machine, not on CI.
#
#   native/check/run.sh                 check both
#   native/check/run.sh --only cublaslt (or --only nccl)
#
# Headers are searched in CUDA_INCLUDE_DIRS (folders separated by ':'), then /usr/local/cuda/include,
# /usr/include, and the include folders of PyTorch's pip packages (nvidia.cublas, nvidia.nccl,
# nvidia.cuda_runtime) when python3 can import them. Prints one PASS or FAIL line last.
set -uo pipefail
cd "$(dirname "$0")/../.."

only=""
if [[ "${1:-}" == "--only" ]]; then only="${2:-}"; fi
if [[ -n "$only" && "$only" != "cublaslt" && "$only" != "nccl" ]]; then
  echo "FAIL: --only takes cublaslt or nccl, not '$only'"; exit 2
fi

folders=()
IFS=':' read -r -a from_env <<< "${CUDA_INCLUDE_DIRS:-}"
for f in "${from_env[@]}"; do [[ -n "$f" ]] && folders+=("$f"); done
folders+=(/usr/local/cuda/include /usr/include)
if command -v python3 > /dev/null; then
  while IFS= read -r f; do [[ -n "$f" ]] && folders+=("$f"); done < <(python3 - 2> /dev/null <<'EOF'
import importlib, os
for name in ("nvidia.cublas", "nvidia.nccl", "nvidia.cuda_runtime"):
    try:
        module = importlib.import_module(name)
    except ImportError:
        continue
    for root in getattr(module, "__path__", []):
        include = os.path.join(root, "include")
        if os.path.isdir(include):
            print(include)
EOF
  )
fi

find_header() {
  for f in "${folders[@]}"; do
    if [[ -f "$f/$1" ]]; then echo "$f/$1"; return 0; fi
  done
  return 1
}

defines=()
checked=()
missing=()
for wanted in cublaslt nccl; do
  [[ -n "$only" && "$only" != "$wanted" ]] && continue
  header=$([[ $wanted == cublaslt ]] && echo cublasLt.h || echo nccl.h)
  if path=$(find_header "$header"); then
    defines+=("-DWNDC_CHECK_${wanted^^}=1")
    checked+=("$path")
  else
    missing+=("$header")
  fi
done
if ((${#missing[@]} > 0)); then
  echo "FAIL: ${missing[*]} not found in: ${folders[*]}"
  echo "      set CUDA_INCLUDE_DIRS to the folders that hold them (e.g. site-packages/nvidia/cublas/include), or use --only"
  exit 1
fi

includes=(-I native/src)
for f in "${folders[@]}"; do [[ -d "$f" ]] && includes+=(-I "$f"); done
compiler="${CXX:-g++}"
if "$compiler" -std=c++17 -fsyntax-only "${defines[@]}" "${includes[@]}" native/check/api_check.cpp; then
  versions=$(printf '#include "cublaslt_api.h"\n#if WNDC_CHECK_CUBLASLT\n#include <cublasLt.h>\ncuBLAS CUBLAS_VER_MAJOR.CUBLAS_VER_MINOR.CUBLAS_VER_PATCH\n#endif\n#if WNDC_CHECK_NCCL\n#include <nccl.h>\nNCCL NCCL_MAJOR.NCCL_MINOR.NCCL_PATCH\n#endif\n' |
    "$compiler" -std=c++17 -E -P "${defines[@]}" "${includes[@]}" -x c++ - 2> /dev/null | grep -E '^(cuBLAS|NCCL) ' | sed 's/ \. /./g; s/ *\. */./g' | paste -sd ',' - | sed 's/,/, /g')
  echo "PASS: wndc's declarations match ${checked[*]} (${versions:-versions unknown})"
else
  echo "FAIL: wndc's declarations differ from ${checked[*]} (the static_assert messages above name each entry)"
  exit 1
fi
