#include "gemm.h"

#include <cstdlib>
#include <string>

namespace wndc {

namespace {

std::string statusText(lt::cublasStatus_t status) {
  const auto& api = lt::cublasLt();
  std::string name = api.cublasLtGetStatusName ? api.cublasLtGetStatusName(status) : std::to_string(static_cast<int>(status));
  std::string text = api.cublasLtGetStatusString ? api.cublasLtGetStatusString(status) : "";
  return text.empty() ? name : name + " (" + text + ")";
}

std::string shape(const GemmCall& c) {
  return std::string(c.what) + ": " + std::to_string(c.m) + " x " + std::to_string(c.n) + " x " + std::to_string(c.k) + (c.transA ? " A^T" : "") +
         (c.transB ? " B^T" : "");
}

void lt_check(lt::cublasStatus_t status, const char* operation, const GemmCall& call) {
  if (status != lt::CUBLAS_STATUS_SUCCESS) throw Error(std::string(operation) + " for " + shape(call) + ": " + statusText(status));
}

}  // namespace

Gemm::Gemm(lt::cublasComputeType_t computeType, void* workspace, size_t workspaceBytes)
    : computeType_(computeType), workspace_(workspace), workspaceBytes_(workspaceBytes) {
  const lt::cublasStatus_t status = lt::cublasLt().cublasLtCreate(&handle_);
  if (status != lt::CUBLAS_STATUS_SUCCESS) throw Error("cublasLtCreate: " + statusText(status));
}

Gemm::~Gemm() {
  const auto& api = lt::cublasLt();
  for (auto& [key, p] : cache_) {
    api.cublasLtMatrixLayoutDestroy(p.a);
    api.cublasLtMatrixLayoutDestroy(p.b);
    api.cublasLtMatrixLayoutDestroy(p.d);
    api.cublasLtMatmulDescDestroy(p.desc);
  }
  if (handle_) api.cublasLtDestroy(handle_);
}

Gemm::Prepared& Gemm::prepare(const GemmCall& c) {
  const Key key{c.transA, c.transB, c.m, c.n, c.k, c.lda, c.ldb, c.ldd, static_cast<int>(c.abType), static_cast<int>(c.dType),
                static_cast<int>(c.epilogue), c.bias ? static_cast<int>(c.biasType) : -1, c.auxLd, c.smCount};
  auto found = cache_.find(key);
  if (found != cache_.end()) return found->second;
  const auto& api = lt::cublasLt();
  Prepared p;
  lt_check(api.cublasLtMatmulDescCreate(&p.desc, computeType_, CUDA_R_32F), "cublasLtMatmulDescCreate", c);
  const lt::cublasOperation_t opA = c.transA ? lt::CUBLAS_OP_T : lt::CUBLAS_OP_N;
  const lt::cublasOperation_t opB = c.transB ? lt::CUBLAS_OP_T : lt::CUBLAS_OP_N;
  lt_check(api.cublasLtMatmulDescSetAttribute(p.desc, lt::CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA), "set TRANSA", c);
  lt_check(api.cublasLtMatmulDescSetAttribute(p.desc, lt::CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB), "set TRANSB", c);
  lt_check(api.cublasLtMatmulDescSetAttribute(p.desc, lt::CUBLASLT_MATMUL_DESC_EPILOGUE, &c.epilogue, sizeof c.epilogue), "set EPILOGUE", c);
  if (c.smCount > 0) {
    const int32_t sms = c.smCount;
    lt_check(api.cublasLtMatmulDescSetAttribute(p.desc, lt::CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET, &sms, sizeof sms), "set SM_COUNT_TARGET", c);
  }
  if (c.bias) {
    lt_check(api.cublasLtMatmulDescSetAttribute(p.desc, lt::CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &c.biasType, sizeof c.biasType), "set BIAS_DATA_TYPE", c);
    lt_check(api.cublasLtMatmulDescSetAttribute(p.desc, lt::CUBLASLT_MATMUL_DESC_BIAS_POINTER, &c.bias, sizeof c.bias), "set BIAS_POINTER", c);
  }
  if (c.aux) {
    const int64_t ld = c.auxLd;
    lt_check(api.cublasLtMatmulDescSetAttribute(p.desc, lt::CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &c.aux, sizeof c.aux), "set EPILOGUE_AUX_POINTER", c);
    lt_check(api.cublasLtMatmulDescSetAttribute(p.desc, lt::CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof ld), "set EPILOGUE_AUX_LD", c);
  }
  // Stored shapes: op(A) is m x k, op(B) is k x n, D is m x n, all column-major.
  lt_check(api.cublasLtMatrixLayoutCreate(&p.a, c.abType, c.transA ? c.k : c.m, c.transA ? c.m : c.k, c.lda), "layout A", c);
  lt_check(api.cublasLtMatrixLayoutCreate(&p.b, c.abType, c.transB ? c.n : c.k, c.transB ? c.k : c.n, c.ldb), "layout B", c);
  lt_check(api.cublasLtMatrixLayoutCreate(&p.d, c.dType, c.m, c.n, c.ldd), "layout D", c);

  lt::cublasLtMatmulPreference_t preference = nullptr;
  lt_check(api.cublasLtMatmulPreferenceCreate(&preference), "cublasLtMatmulPreferenceCreate", c);
  const uint64_t workspaceBytes = workspaceBytes_;
  api.cublasLtMatmulPreferenceSetAttribute(preference, lt::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspaceBytes, sizeof workspaceBytes);
  lt::cublasLtMatmulHeuristicResult_t results[8] = {};
  int returned = 0;
  const lt::cublasStatus_t status = api.cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.d, p.d, preference, 8, results, &returned);
  api.cublasLtMatmulPreferenceDestroy(preference);
  if (status != lt::CUBLAS_STATUS_SUCCESS || returned == 0) {
    api.cublasLtMatrixLayoutDestroy(p.a);
    api.cublasLtMatrixLayoutDestroy(p.b);
    api.cublasLtMatrixLayoutDestroy(p.d);
    api.cublasLtMatmulDescDestroy(p.desc);
    throw Error("cuBLASLt has no algorithm for " + shape(c) + (status != lt::CUBLAS_STATUS_SUCCESS ? ": " + statusText(status) : ""));
  }
  p.algo = results[0].algo;
  for (int i = 0; i < returned; i++)
    if (results[i].state == lt::CUBLAS_STATUS_SUCCESS && results[i].workspaceSize <= workspaceBytes_) p.candidates.push_back(results[i]);
  return cache_.emplace(key, p).first->second;
}

bool Gemm::supports(const GemmCall& c) {
  try {
    prepare(c);
    return true;
  } catch (const Error&) {
    return false;
  }
}

void Gemm::setPointers(Prepared& p, const GemmCall& c) {
  const auto& api = lt::cublasLt();
  if (c.bias)
    lt_check(api.cublasLtMatmulDescSetAttribute(p.desc, lt::CUBLASLT_MATMUL_DESC_BIAS_POINTER, &c.bias, sizeof c.bias), "set BIAS_POINTER", c);
  if (c.aux)
    lt_check(api.cublasLtMatmulDescSetAttribute(p.desc, lt::CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &c.aux, sizeof c.aux), "set EPILOGUE_AUX_POINTER", c);
}

void Gemm::tune(Prepared& p, const GemmCall& c, cudaStream_t stream) {
  p.tuned = true;
  const char* flag = std::getenv("WNDC_CUDA_AUTOTUNE");
  // Small products are not worth timing; the heuristic's first choice stays.
  if ((flag && std::string(flag) == "0") || p.candidates.size() < 2 || static_cast<double>(c.m) * c.n * c.k < 1e9) return;
  const auto& api = lt::cublasLt();
  const float alpha = 1.0f, beta = 0.0f;
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate (GEMM tuning)");
  check(cudaEventCreate(&stop), "cudaEventCreate (GEMM tuning)");
  float best = -1;
  for (const auto& candidate : p.candidates) {
    auto once = [&] {
      return api.cublasLtMatmul(handle_, p.desc, &alpha, c.a, p.a, c.b, p.b, &beta, c.d, p.d, c.d, p.d, &candidate.algo, workspace_, workspaceBytes_, stream);
    };
    if (once() != lt::CUBLAS_STATUS_SUCCESS) continue;  // a candidate that fails to run is not chosen
    cudaEventRecord(start, stream);
    bool ok = true;
    for (int r = 0; r < 3 && ok; r++) ok = once() == lt::CUBLAS_STATUS_SUCCESS;
    cudaEventRecord(stop, stream);
    float ms = 0;
    if (!ok || cudaEventSynchronize(stop) != cudaSuccess || cudaEventElapsedTime(&ms, start, stop) != cudaSuccess) continue;
    if (best < 0 || ms < best) {
      best = ms;
      p.algo = candidate.algo;
    }
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  check(cudaGetLastError(), "GEMM tuning");
}

void Gemm::run(const GemmCall& c, cudaStream_t stream) {
  if (c.m == 0 || c.n == 0) return;
  if (c.k == 0) {
    // An empty batch: the product of nothing is zero (a kernel gradient of an empty batch).
    const size_t element = c.dType == CUDA_R_32F ? 4 : 2;
    check(cudaMemsetAsync(c.d, 0, static_cast<size_t>(c.ldd) * c.n * element, stream), "clear an empty product");
    return;
  }
  Prepared& p = prepare(c);
  const auto& api = lt::cublasLt();
  setPointers(p, c);
  if (!p.tuned && c.tune) tune(p, c, stream);
  const float alpha = 1.0f, beta = 0.0f;
  lt_check(api.cublasLtMatmul(handle_, p.desc, &alpha, c.a, p.a, c.b, p.b, &beta, c.d, p.d, c.d, p.d, &p.algo, workspace_, workspaceBytes_, stream),
           "cublasLtMatmul", c);
}

}  // namespace wndc
