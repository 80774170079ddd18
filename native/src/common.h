// Shared by every native source: error handling and the 16-bit float helpers.
//
// Every CUDA, cuBLASLt or argument failure throws wndc::Error (a std::runtime_error); the N-API
// layer (addon.cpp) turns it into a JavaScript Error. Nothing in the addon aborts the process.
#pragma once

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace wndc {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

/** Throws naming `operation` and the CUDA error when `status` is not cudaSuccess. */
inline void check(cudaError_t status, const char* operation) {
  if (status != cudaSuccess) {
    // Clear a sticky error's "last error" so that the next message is about the next call.
    cudaGetLastError();
    throw Error(std::string(operation) + ": " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")");
  }
}

/** Checks the launch of the kernel just enqueued. */
inline void checkLaunch(const char* kernel) { check(cudaGetLastError(), kernel); }

inline std::string mib(double bytes) {
  char text[64];
  snprintf(text, sizeof text, "%.1f MiB", bytes / 1048576.0);
  return text;
}

// --- 16-bit activations: every kernel computes in float and stores in the activation type T. ---

template <typename T> __device__ __forceinline__ float toFloat(T v);
template <> __device__ __forceinline__ float toFloat<float>(float v) { return v; }
template <> __device__ __forceinline__ float toFloat<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <> __device__ __forceinline__ float toFloat<__half>(__half v) { return __half2float(v); }

template <typename T> __device__ __forceinline__ T fromFloat(float v);
template <> __device__ __forceinline__ float fromFloat<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 fromFloat<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half fromFloat<__half>(float v) { return __float2half_rn(v); }

/** Blocks for `n` items at `threads` per block, capped so grid-stride loops cover the rest. */
inline unsigned blocksFor(long long n, int threads, long long cap = 65535LL * 8) {
  long long b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return static_cast<unsigned>(b < cap ? b : cap);
}

}  // namespace wndc
