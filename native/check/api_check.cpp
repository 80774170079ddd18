// Compile-time proof that wndc's own cuBLASLt and NCCL declarations (native/src/cublaslt_api.h,
// nccl_api.h) match the real headers: every enumerator of every (name, value) list, the struct
// sizes and layouts, and each resolved function's return and parameter sizes. Compiled only
// (-fsyntax-only) by native/check/run.sh on a machine that has cublasLt.h and nccl.h; a mismatch is
// a static_assert failure naming the entry.
#include <cstddef>
#include <type_traits>

#if WNDC_CHECK_CUBLASLT
#include <cublasLt.h>
#endif
#if WNDC_CHECK_NCCL
#include <nccl.h>
#endif

#include "cublaslt_api.h"
#include "nccl_api.h"

namespace {

// Function pointer types of the same shape: same arity, and each of the return and parameter types
// of the same size (the enums and handles are distinct types on each side, so exact equality is
// impossible; size and count catch a wrong or missing parameter).
template <typename T>
constexpr std::size_t sizeOf() {
  if constexpr (std::is_void_v<T>) return 0;
  else return sizeof(T);
}

template <typename A, typename B>
struct SameShape : std::false_type {};

template <typename RA, typename... PA, typename RB, typename... PB>
struct SameShape<RA (*)(PA...), RB (*)(PB...)> {
  static constexpr bool sameCount = sizeof...(PA) == sizeof...(PB);
  static constexpr bool sameSizes() {
    if constexpr (sizeof...(PA) != sizeof...(PB)) return false;
    else return sizeOf<RA>() == sizeOf<RB>() && ((sizeOf<PA>() == sizeOf<PB>()) && ...);
  }
  static constexpr bool value = sameCount && sameSizes();
};

}  // namespace

#define WNDC_SAME_VALUE(ours, real)                                                  \
  static_assert(static_cast<long long>(ours) == static_cast<long long>(real),        \
                #ours " differs from the real " #real);

#if WNDC_CHECK_CUBLASLT
#define WNDC_CHECK_LT(name, value) WNDC_SAME_VALUE(wndc::lt::name, ::name)
WNDC_CUBLAS_STATUS(WNDC_CHECK_LT)
WNDC_CUBLAS_COMPUTE_TYPE(WNDC_CHECK_LT)
WNDC_CUBLAS_OPERATION(WNDC_CHECK_LT)
WNDC_CUBLASLT_POINTER_MODE(WNDC_CHECK_LT)
WNDC_CUBLASLT_ORDER(WNDC_CHECK_LT)
WNDC_CUBLASLT_EPILOGUE(WNDC_CHECK_LT)
WNDC_CUBLASLT_MATMUL_DESC_ATTRIBUTE(WNDC_CHECK_LT)
WNDC_CUBLASLT_MATRIX_LAYOUT_ATTRIBUTE(WNDC_CHECK_LT)
WNDC_CUBLASLT_MATMUL_PREFERENCE_ATTRIBUTE(WNDC_CHECK_LT)

static_assert(sizeof(wndc::lt::cublasStatus_t) == sizeof(::cublasStatus_t), "cublasStatus_t size");
static_assert(sizeof(wndc::lt::cublasComputeType_t) == sizeof(::cublasComputeType_t), "cublasComputeType_t size");
static_assert(sizeof(wndc::lt::cublasLtMatmulAlgo_t) == sizeof(::cublasLtMatmulAlgo_t), "cublasLtMatmulAlgo_t size");
static_assert(sizeof(wndc::lt::cublasLtMatmulHeuristicResult_t) == sizeof(::cublasLtMatmulHeuristicResult_t),
              "cublasLtMatmulHeuristicResult_t size");
#define WNDC_SAME_OFFSET(type, field)                                                  \
  static_assert(offsetof(wndc::lt::type, field) == offsetof(::type, field), #type "::" #field " offset");
WNDC_SAME_OFFSET(cublasLtMatmulHeuristicResult_t, algo)
WNDC_SAME_OFFSET(cublasLtMatmulHeuristicResult_t, workspaceSize)
WNDC_SAME_OFFSET(cublasLtMatmulHeuristicResult_t, state)
WNDC_SAME_OFFSET(cublasLtMatmulHeuristicResult_t, wavesCount)
WNDC_SAME_OFFSET(cublasLtMatmulHeuristicResult_t, reserved)

#define WNDC_CHECK_LT_FUNCTION(name) \
  static_assert(SameShape<wndc::lt::name##_t, decltype(&::name)>::value, #name " has another signature");
WNDC_CUBLASLT_FUNCTIONS(WNDC_CHECK_LT_FUNCTION)

// The minimum version wndc accepts is one these headers could describe.
static_assert(CUBLAS_VERSION >= wndc::lt::kMinimumVersion, "these cuBLAS headers are older than wndc accepts");
#endif

#if WNDC_CHECK_NCCL
#define WNDC_CHECK_NCCL_VALUE(name, value) WNDC_SAME_VALUE(wndc::nccl::name, ::name)
WNDC_NCCL_RESULT(WNDC_CHECK_NCCL_VALUE)
WNDC_NCCL_DATA_TYPE(WNDC_CHECK_NCCL_VALUE)
WNDC_NCCL_RED_OP(WNDC_CHECK_NCCL_VALUE)

static_assert(wndc::nccl::kUniqueIdBytes == NCCL_UNIQUE_ID_BYTES, "ncclUniqueId size");
static_assert(sizeof(wndc::nccl::ncclUniqueId) == sizeof(::ncclUniqueId), "ncclUniqueId size");
static_assert(sizeof(wndc::nccl::ncclResult_t) == sizeof(::ncclResult_t), "ncclResult_t size");
static_assert(sizeof(wndc::nccl::ncclDataType_t) == sizeof(::ncclDataType_t), "ncclDataType_t size");
static_assert(sizeof(wndc::nccl::ncclRedOp_t) == sizeof(::ncclRedOp_t), "ncclRedOp_t size");

// The config prefix wndc passes (ncclConfig_v21400): same offsets as the real struct's first members,
// no larger than it, and the magic NCCL checks.
static_assert(sizeof(wndc::nccl::ncclConfig_v21400) <= sizeof(::ncclConfig_t), "ncclConfig_t is smaller than wndc's prefix");
#define WNDC_SAME_CONFIG_OFFSET(field)                                                                  \
  static_assert(offsetof(wndc::nccl::ncclConfig_v21400, field) == offsetof(::ncclConfig_t, field) &&     \
                    sizeof(wndc::nccl::ncclConfig_v21400::field) == sizeof(::ncclConfig_t::field),       \
                "ncclConfig_t::" #field " offset or size");
WNDC_SAME_CONFIG_OFFSET(size)
WNDC_SAME_CONFIG_OFFSET(magic)
WNDC_SAME_CONFIG_OFFSET(version)
WNDC_SAME_CONFIG_OFFSET(blocking)
// The magic as NCCL_CONFIG_INITIALIZER writes it (a literal in some versions, NCCL_API_MAGIC in others).
constexpr ::ncclConfig_t kInitializedConfig = NCCL_CONFIG_INITIALIZER;
static_assert(wndc::nccl::kConfigMagic == kInitializedConfig.magic, "NCCL_CONFIG_INITIALIZER's magic");
static_assert(NCCL_VERSION(2, 14, 0) == wndc::nccl::kConfigVersion, "NCCL_VERSION(2, 14, 0)");
static_assert(NCCL_VERSION_CODE >= wndc::nccl::kConfigVersion, "this nccl.h is older than 2.14 (no non-blocking communicators)");

#define WNDC_CHECK_NCCL_FUNCTION(name) \
  static_assert(SameShape<wndc::nccl::name##_t, decltype(&::name)>::value, #name " has another signature");
WNDC_NCCL_FUNCTIONS(WNDC_CHECK_NCCL_FUNCTION)
// The optional ones, where this nccl.h has them: symmetric memory since 2.27, the host-side peer
// pointer since 2.29.
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 27, 0)
static_assert(wndc::nccl::kWinCollSymmetric == NCCL_WIN_COLL_SYMMETRIC, "NCCL_WIN_COLL_SYMMETRIC");
WNDC_CHECK_NCCL_FUNCTION(ncclMemAlloc)
WNDC_CHECK_NCCL_FUNCTION(ncclMemFree)
WNDC_CHECK_NCCL_FUNCTION(ncclCommWindowRegister)
WNDC_CHECK_NCCL_FUNCTION(ncclCommWindowDeregister)
#endif
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 29, 0)
WNDC_CHECK_NCCL_FUNCTION(ncclGetPeerDevicePointer)
#endif
#endif
