// The subset of cuBLASLt that wndc's GEMMs use, declared here so that the addon builds without the
// cuBLAS headers (CI and the dev machines have only nvcc and cudart) and loads libcublasLt with
// dlopen at run time (dynlib.cpp).
//
// The enumerator values and struct layouts are those of cublasLt.h / cublas_api.h in CUDA 12 and 13.
// Every enumerator comes from one of the (name, value) lists below, and native/check/api_check.cpp
// compares each list entry, each struct size and each function's parameter shapes with the real
// headers (`native/check/run.sh` on a machine that has them), so nothing here can drift unchecked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <driver_types.h>   // cudaStream_t
#include <library_types.h>  // cudaDataType_t (CUDA_R_32F, CUDA_R_16BF, CUDA_R_16F, ...)

namespace wndc::lt {

#ifndef WNDC_ENUMERATOR
#define WNDC_ENUMERATOR(name, value) name = value,
#endif

#define WNDC_CUBLAS_STATUS(X)           \
  X(CUBLAS_STATUS_SUCCESS, 0)           \
  X(CUBLAS_STATUS_NOT_INITIALIZED, 1)   \
  X(CUBLAS_STATUS_ALLOC_FAILED, 3)      \
  X(CUBLAS_STATUS_INVALID_VALUE, 7)     \
  X(CUBLAS_STATUS_ARCH_MISMATCH, 8)     \
  X(CUBLAS_STATUS_MAPPING_ERROR, 11)    \
  X(CUBLAS_STATUS_EXECUTION_FAILED, 13) \
  X(CUBLAS_STATUS_INTERNAL_ERROR, 14)   \
  X(CUBLAS_STATUS_NOT_SUPPORTED, 15)    \
  X(CUBLAS_STATUS_LICENSE_ERROR, 16)
enum cublasStatus_t { WNDC_CUBLAS_STATUS(WNDC_ENUMERATOR) };

// FAST_TF32 is the default fp32 mode (TF32 tensor cores); PEDANTIC is strict fp32; FAST_16BF and
// FAST_16F are only for fp32 inputs that may be rounded (bf16/fp16 inputs use plain COMPUTE_32F).
#define WNDC_CUBLAS_COMPUTE_TYPE(X)       \
  X(CUBLAS_COMPUTE_32F, 68)               \
  X(CUBLAS_COMPUTE_32F_PEDANTIC, 69)      \
  X(CUBLAS_COMPUTE_32F_FAST_16F, 74)      \
  X(CUBLAS_COMPUTE_32F_FAST_16BF, 75)     \
  X(CUBLAS_COMPUTE_32F_FAST_TF32, 77)
enum cublasComputeType_t { WNDC_CUBLAS_COMPUTE_TYPE(WNDC_ENUMERATOR) };

#define WNDC_CUBLAS_OPERATION(X) \
  X(CUBLAS_OP_N, 0)              \
  X(CUBLAS_OP_T, 1)
enum cublasOperation_t { WNDC_CUBLAS_OPERATION(WNDC_ENUMERATOR) };

#define WNDC_CUBLASLT_POINTER_MODE(X)  \
  X(CUBLASLT_POINTER_MODE_HOST, 0)     \
  X(CUBLASLT_POINTER_MODE_DEVICE, 1)
enum cublasLtPointerMode_t { WNDC_CUBLASLT_POINTER_MODE(WNDC_ENUMERATOR) };

#define WNDC_CUBLASLT_ORDER(X) \
  X(CUBLASLT_ORDER_COL, 0)     \
  X(CUBLASLT_ORDER_ROW, 1)
enum cublasLtOrder_t { WNDC_CUBLASLT_ORDER(WNDC_ENUMERATOR) };

// The flags combine: RELU 2, BIAS 4, GELU 32, AUX (write/read the auxiliary matrix) 128,
// DRELU 8|AUX, DGELU 64|AUX, BGRAD 16 (bias gradient of D's rows).
#define WNDC_CUBLASLT_EPILOGUE(X)         \
  X(CUBLASLT_EPILOGUE_DEFAULT, 1)         \
  X(CUBLASLT_EPILOGUE_RELU, 2)            \
  X(CUBLASLT_EPILOGUE_RELU_AUX, 130)      \
  X(CUBLASLT_EPILOGUE_BIAS, 4)            \
  X(CUBLASLT_EPILOGUE_RELU_BIAS, 6)       \
  X(CUBLASLT_EPILOGUE_RELU_AUX_BIAS, 134) \
  X(CUBLASLT_EPILOGUE_DRELU, 136)         \
  X(CUBLASLT_EPILOGUE_DRELU_BGRAD, 152)   \
  X(CUBLASLT_EPILOGUE_GELU, 32)           \
  X(CUBLASLT_EPILOGUE_GELU_AUX, 160)      \
  X(CUBLASLT_EPILOGUE_GELU_BIAS, 36)      \
  X(CUBLASLT_EPILOGUE_GELU_AUX_BIAS, 164) \
  X(CUBLASLT_EPILOGUE_DGELU, 192)         \
  X(CUBLASLT_EPILOGUE_DGELU_BGRAD, 208)   \
  X(CUBLASLT_EPILOGUE_BGRADA, 256)        \
  X(CUBLASLT_EPILOGUE_BGRADB, 512)
enum cublasLtEpilogue_t { WNDC_CUBLASLT_EPILOGUE(WNDC_ENUMERATOR) };

// Value types (what cublasLtMatmulDescSetAttribute expects): COMPUTE_TYPE, SCALE_TYPE,
// POINTER_MODE, TRANSA, TRANSB, BIAS_DATA_TYPE, EPILOGUE_AUX_DATA_TYPE int32_t; EPILOGUE uint32_t;
// pointers void*; EPILOGUE_AUX_LD and the batch strides int64_t.
#define WNDC_CUBLASLT_MATMUL_DESC_ATTRIBUTE(X)              \
  X(CUBLASLT_MATMUL_DESC_COMPUTE_TYPE, 0)                   \
  X(CUBLASLT_MATMUL_DESC_SCALE_TYPE, 1)                     \
  X(CUBLASLT_MATMUL_DESC_POINTER_MODE, 2)                   \
  X(CUBLASLT_MATMUL_DESC_TRANSA, 3)                         \
  X(CUBLASLT_MATMUL_DESC_TRANSB, 4)                         \
  X(CUBLASLT_MATMUL_DESC_EPILOGUE, 7)                       \
  X(CUBLASLT_MATMUL_DESC_BIAS_POINTER, 8)                   \
  X(CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, 10)             \
  X(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, 11)          \
  X(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, 12)               \
  X(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE, 13)     \
  X(CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET, 15)               \
  X(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, 22)        \
  X(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, 26)
enum cublasLtMatmulDescAttributes_t { WNDC_CUBLASLT_MATMUL_DESC_ATTRIBUTE(WNDC_ENUMERATOR) };

// TYPE uint32_t; ORDER and BATCH_COUNT int32_t; ROWS and COLS uint64_t; LD and
// STRIDED_BATCH_OFFSET int64_t.
#define WNDC_CUBLASLT_MATRIX_LAYOUT_ATTRIBUTE(X)        \
  X(CUBLASLT_MATRIX_LAYOUT_TYPE, 0)                     \
  X(CUBLASLT_MATRIX_LAYOUT_ORDER, 1)                    \
  X(CUBLASLT_MATRIX_LAYOUT_ROWS, 2)                     \
  X(CUBLASLT_MATRIX_LAYOUT_COLS, 3)                     \
  X(CUBLASLT_MATRIX_LAYOUT_LD, 4)                       \
  X(CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, 5)              \
  X(CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, 6)
enum cublasLtMatrixLayoutAttribute_t { WNDC_CUBLASLT_MATRIX_LAYOUT_ATTRIBUTE(WNDC_ENUMERATOR) };

// SEARCH_MODE uint32_t; MAX_WORKSPACE_BYTES uint64_t; the alignments uint32_t.
#define WNDC_CUBLASLT_MATMUL_PREFERENCE_ATTRIBUTE(X)    \
  X(CUBLASLT_MATMUL_PREF_SEARCH_MODE, 0)                \
  X(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, 1)        \
  X(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, 5)      \
  X(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, 6)      \
  X(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, 7)      \
  X(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, 8)
enum cublasLtMatmulPreferenceAttributes_t { WNDC_CUBLASLT_MATMUL_PREFERENCE_ATTRIBUTE(WNDC_ENUMERATOR) };

// Handles: the library only ever hands out and takes back pointers, so incomplete types suffice.
struct cublasLtContext;
struct cublasLtMatmulDescOpaque;
struct cublasLtMatrixLayoutOpaque;
struct cublasLtMatmulPreferenceOpaque;
using cublasLtHandle_t = cublasLtContext*;
using cublasLtMatmulDesc_t = cublasLtMatmulDescOpaque*;
using cublasLtMatrixLayout_t = cublasLtMatrixLayoutOpaque*;
using cublasLtMatmulPreference_t = cublasLtMatmulPreferenceOpaque*;

// Semi-opaque: the caller owns the storage (heuristic results are copied out by value).
struct cublasLtMatmulAlgo_t {
  uint64_t data[8];
};

struct cublasLtMatmulHeuristicResult_t {
  cublasLtMatmulAlgo_t algo;
  size_t workspaceSize;
  cublasStatus_t state;  // the other fields are valid only when this is CUBLAS_STATUS_SUCCESS
  float wavesCount;
  int reserved[4];
};
static_assert(sizeof(cublasLtMatmulHeuristicResult_t) == 96, "cublasLtMatmulHeuristicResult_t layout");

using cublasLtCreate_t = cublasStatus_t (*)(cublasLtHandle_t* handle);
using cublasLtDestroy_t = cublasStatus_t (*)(cublasLtHandle_t handle);
/** major * 10000 + minor * 100 + patch, e.g. 120403 for 12.4.3. */
using cublasLtGetVersion_t = size_t (*)();
using cublasLtGetStatusName_t = const char* (*)(cublasStatus_t status);
using cublasLtGetStatusString_t = const char* (*)(cublasStatus_t status);
using cublasLtMatmulDescCreate_t = cublasStatus_t (*)(cublasLtMatmulDesc_t* desc, cublasComputeType_t computeType,
                                                      cudaDataType_t scaleType);
using cublasLtMatmulDescDestroy_t = cublasStatus_t (*)(cublasLtMatmulDesc_t desc);
using cublasLtMatmulDescSetAttribute_t = cublasStatus_t (*)(cublasLtMatmulDesc_t desc,
                                                            cublasLtMatmulDescAttributes_t attribute,
                                                            const void* value, size_t valueBytes);
using cublasLtMatrixLayoutCreate_t = cublasStatus_t (*)(cublasLtMatrixLayout_t* layout, cudaDataType_t type,
                                                        uint64_t rows, uint64_t cols, int64_t ld);
using cublasLtMatrixLayoutDestroy_t = cublasStatus_t (*)(cublasLtMatrixLayout_t layout);
using cublasLtMatrixLayoutSetAttribute_t = cublasStatus_t (*)(cublasLtMatrixLayout_t layout,
                                                              cublasLtMatrixLayoutAttribute_t attribute,
                                                              const void* value, size_t valueBytes);
using cublasLtMatmulPreferenceCreate_t = cublasStatus_t (*)(cublasLtMatmulPreference_t* preference);
using cublasLtMatmulPreferenceDestroy_t = cublasStatus_t (*)(cublasLtMatmulPreference_t preference);
using cublasLtMatmulPreferenceSetAttribute_t = cublasStatus_t (*)(cublasLtMatmulPreference_t preference,
                                                                  cublasLtMatmulPreferenceAttributes_t attribute,
                                                                  const void* value, size_t valueBytes);
/** Writes up to `requested` results, fastest first, and their number to `*returned`. */
using cublasLtMatmulAlgoGetHeuristic_t = cublasStatus_t (*)(
    cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
    cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d, cublasLtMatmulPreference_t preference, int requested,
    cublasLtMatmulHeuristicResult_t results[], int* returned);
/** D = alpha * op(A) * op(B) + beta * C, then the epilogue; alpha and beta per POINTER_MODE. */
using cublasLtMatmul_t = cublasStatus_t (*)(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha,
                                            const void* a, cublasLtMatrixLayout_t aLayout, const void* b,
                                            cublasLtMatrixLayout_t bLayout, const void* beta, const void* c,
                                            cublasLtMatrixLayout_t cLayout, void* d, cublasLtMatrixLayout_t dLayout,
                                            const cublasLtMatmulAlgo_t* algo, void* workspace,
                                            size_t workspaceBytes, cudaStream_t stream);

// Every function the addon resolves; the struct members, the dlsym loop and the signature check
// are generated from this list.
#define WNDC_CUBLASLT_FUNCTIONS(X)          \
  X(cublasLtCreate)                         \
  X(cublasLtDestroy)                        \
  X(cublasLtGetVersion)                     \
  X(cublasLtGetStatusName)                  \
  X(cublasLtGetStatusString)                \
  X(cublasLtMatmulDescCreate)               \
  X(cublasLtMatmulDescDestroy)              \
  X(cublasLtMatmulDescSetAttribute)         \
  X(cublasLtMatrixLayoutCreate)             \
  X(cublasLtMatrixLayoutDestroy)            \
  X(cublasLtMatrixLayoutSetAttribute)       \
  X(cublasLtMatmulPreferenceCreate)         \
  X(cublasLtMatmulPreferenceDestroy)        \
  X(cublasLtMatmulPreferenceSetAttribute)   \
  X(cublasLtMatmulAlgoGetHeuristic)         \
  X(cublasLtMatmul)

/** The loaded library's entry points, named as in cuBLASLt: `cublasLt().cublasLtMatmul(...)`. */
struct CublasLt {
#define WNDC_FUNCTION_MEMBER(name) name##_t name = nullptr;
  WNDC_CUBLASLT_FUNCTIONS(WNDC_FUNCTION_MEMBER)
#undef WNDC_FUNCTION_MEMBER
};

/** Oldest cuBLASLt accepted (cublasLtGetVersion()): 12.0.0. */
constexpr size_t kMinimumVersion = 120000;

/**
 * Finds and loads cuBLASLt once (later calls return the same path); returns the file loaded.
 * Throws std::runtime_error naming every place searched and how to fix it (dynlib.cpp).
 */
std::string loadCublasLt();

/** The loaded entry points; throws std::runtime_error when loadCublasLt has not succeeded. */
const CublasLt& cublasLt();

}  // namespace wndc::lt
