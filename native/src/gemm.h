// Matrix products through cuBLASLt (loaded at run time, see cublaslt_api.h). Every product is
// described in cuBLASLt's column-major terms; model.cu maps its row-major tensors onto them.
// Descriptors and the chosen algorithm are cached per shape, so a training step does no
// heuristic search after the first.
#pragma once

#include <map>
#include <vector>
#include <tuple>

#include "common.h"
#include "cublaslt_api.h"

namespace wndc {

struct GemmCall {
  bool transA = false, transB = false;
  long long m = 0, n = 0, k = 0;
  const void* a = nullptr;
  long long lda = 0;
  const void* b = nullptr;
  long long ldb = 0;
  void* d = nullptr;
  long long ldd = 0;
  cudaDataType_t abType = CUDA_R_32F;
  cudaDataType_t dType = CUDA_R_32F;
  lt::cublasLtEpilogue_t epilogue = lt::CUBLASLT_EPILOGUE_DEFAULT;
  /** Bias of the BIAS / RELU_BIAS epilogues (read), or the bias gradient of DRELU_BGRAD (written); m values. */
  const void* bias = nullptr;
  cudaDataType_t biasType = CUDA_R_32F;
  /** ReLU bit mask written by RELU_AUX_BIAS and read by DRELU_BGRAD, with its leading dimension (a multiple of 128). */
  void* aux = nullptr;
  long long auxLd = 0;
  /** What the product is, for error messages (e.g. "deep/layers/dense_0 forward"). */
  const char* what = "";
  /** Time cuBLASLt's candidates on first use (full training batches); other shapes take the heuristic's first. */
  bool tune = true;
  /** SMs the product should plan for (0: the whole GPU): fewer when another stream runs beside it. */
  int smCount = 0;
};

class Gemm {
 public:
  /** `computeType`: CUBLAS_COMPUTE_32F (strict fp32 and 16-bit inputs) or _32F_FAST_TF32. */
  Gemm(lt::cublasComputeType_t computeType, void* workspace, size_t workspaceBytes);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  void run(const GemmCall& call, cudaStream_t stream);
  /** Whether cuBLASLt has an algorithm for the call's shape, types and epilogue (no product is run). */
  bool supports(const GemmCall& call);

 private:
  struct Prepared {
    lt::cublasLtMatmulDesc_t desc = nullptr;
    lt::cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    lt::cublasLtMatmulAlgo_t algo{};
    /** Candidates from the heuristic, fastest first by its estimate; timed once on first use (`tuned`). */
    std::vector<lt::cublasLtMatmulHeuristicResult_t> candidates;
    bool tuned = false;
  };
  using Key = std::tuple<bool, bool, long long, long long, long long, long long, long long, long long, int, int, int, int, long long, int>;
  Prepared& prepare(const GemmCall& call);
  /** Times each candidate on the call's own buffers and keeps the fastest (WNDC_CUDA_AUTOTUNE=0: the heuristic's first). */
  void tune(Prepared& p, const GemmCall& call, cudaStream_t stream);
  void setPointers(Prepared& p, const GemmCall& call);

  lt::cublasLtHandle_t handle_ = nullptr;
  lt::cublasComputeType_t computeType_;
  void* workspace_;
  size_t workspaceBytes_;
  std::map<Key, Prepared> cache_;
};

}  // namespace wndc
