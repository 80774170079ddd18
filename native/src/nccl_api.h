// The subset of NCCL that wndc's data parallelism uses, declared here so that the addon builds
// without nccl.h and loads libnccl with dlopen at run time, only when asked (dynlib.cpp).
//
// Values and layouts are those of nccl.h (NCCL 2.x); native/check/api_check.cpp compares every
// (name, value) list entry, the struct sizes and each function's parameter shapes with the real
// header (`native/check/run.sh`).
#pragma once

#include <cstddef>
#include <string>

#include <driver_types.h>  // cudaStream_t

namespace wndc::nccl {

#ifndef WNDC_ENUMERATOR
#define WNDC_ENUMERATOR(name, value) name = value,
#endif

#define WNDC_NCCL_RESULT(X)         \
  X(ncclSuccess, 0)                 \
  X(ncclUnhandledCudaError, 1)      \
  X(ncclSystemError, 2)             \
  X(ncclInternalError, 3)           \
  X(ncclInvalidArgument, 4)         \
  X(ncclInvalidUsage, 5)            \
  X(ncclRemoteError, 6)             \
  X(ncclInProgress, 7)
enum ncclResult_t { WNDC_NCCL_RESULT(WNDC_ENUMERATOR) };

#define WNDC_NCCL_DATA_TYPE(X) \
  X(ncclInt8, 0)               \
  X(ncclUint8, 1)              \
  X(ncclInt32, 2)              \
  X(ncclUint32, 3)             \
  X(ncclInt64, 4)              \
  X(ncclUint64, 5)             \
  X(ncclFloat16, 6)            \
  X(ncclFloat32, 7)            \
  X(ncclFloat64, 8)            \
  X(ncclBfloat16, 9)
enum ncclDataType_t { WNDC_NCCL_DATA_TYPE(WNDC_ENUMERATOR) };

#define WNDC_NCCL_RED_OP(X) \
  X(ncclSum, 0)             \
  X(ncclProd, 1)            \
  X(ncclMax, 2)             \
  X(ncclMin, 3)             \
  X(ncclAvg, 4)
enum ncclRedOp_t { WNDC_NCCL_RED_OP(WNDC_ENUMERATOR) };

/** Bytes of an ncclUniqueId (NCCL_UNIQUE_ID_BYTES; not that name, which nccl.h defines as a macro). */
constexpr size_t kUniqueIdBytes = 128;

/** Made by one rank with ncclGetUniqueId and sent to every other rank (passed by value). */
struct ncclUniqueId {
  char internal[kUniqueIdBytes];
};

struct ncclComm;
using ncclComm_t = ncclComm*;

/** major * 10000 + minor * 100 + patch since 2.9 (e.g. 22105 for 2.21.5). */
using ncclGetVersion_t = ncclResult_t (*)(int* version);
using ncclGetUniqueId_t = ncclResult_t (*)(ncclUniqueId* id);
/** Collective across ranks: every rank calls it with the same id; the current CUDA device is used. */
using ncclCommInitRank_t = ncclResult_t (*)(ncclComm_t* comm, int ranks, ncclUniqueId id, int rank);
/**
 * The first members of nccl.h's ncclConfig_t, as NCCL 2.14 laid it out: NCCL reads `size` bytes and
 * treats members newer than `version` as unset, so this prefix is enough to ask for a non-blocking
 * communicator (`blocking = 0`) from any NCCL since 2.14. Build it with nonBlockingConfig().
 */
struct ncclConfig_v21400 {
  size_t size;
  unsigned int magic;
  unsigned int version;
  int blocking;
};
/** NCCL_API_MAGIC, which nccl.h's NCCL_CONFIG_INITIALIZER puts in `magic`. */
constexpr unsigned int kConfigMagic = 0xcafebeef;
/** NCCL_VERSION(2, 14, 0): the layout above. */
constexpr unsigned int kConfigVersion = 21400;

inline ncclConfig_v21400 nonBlockingConfig() { return {sizeof(ncclConfig_v21400), kConfigMagic, kConfigVersion, 0}; }

/**
 * ncclCommInitRank with a configuration; with `blocking = 0` it returns at once (ncclInProgress) and
 * every later call on the communicator may too: poll ncclCommGetAsyncError until it is no longer
 * ncclInProgress before the next call.
 */
using ncclCommInitRankConfig_t = ncclResult_t (*)(ncclComm_t* comm, int ranks, ncclUniqueId id, int rank,
                                                  ncclConfig_v21400* config);
using ncclCommDestroy_t = ncclResult_t (*)(ncclComm_t comm);
/** Frees the communicator without waiting for the other ranks, stopping any operation still running. */
using ncclCommAbort_t = ncclResult_t (*)(ncclComm_t comm);
/** The communicator's state: ncclSuccess, ncclInProgress (non-blocking init or call not done), or its error. */
using ncclCommGetAsyncError_t = ncclResult_t (*)(ncclComm_t comm, ncclResult_t* asyncError);
using ncclAllReduce_t = ncclResult_t (*)(const void* send, void* receive, size_t count, ncclDataType_t type,
                                         ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream);
using ncclBroadcast_t = ncclResult_t (*)(const void* send, void* receive, size_t count, ncclDataType_t type,
                                         int root, ncclComm_t comm, cudaStream_t stream);
/** `sendCount` values from each rank; `receive` holds ranks * sendCount. */
using ncclAllGather_t = ncclResult_t (*)(const void* send, void* receive, size_t sendCount, ncclDataType_t type,
                                         ncclComm_t comm, cudaStream_t stream);
/** `send` holds ranks * receiveCount; each rank gets its reduced block of `receiveCount`. */
using ncclReduceScatter_t = ncclResult_t (*)(const void* send, void* receive, size_t receiveCount,
                                             ncclDataType_t type, ncclRedOp_t op, ncclComm_t comm,
                                             cudaStream_t stream);
using ncclGroupStart_t = ncclResult_t (*)();
using ncclGroupEnd_t = ncclResult_t (*)();
using ncclGetErrorString_t = const char* (*)(ncclResult_t result);
/** The last error's detail (more than ncclGetErrorString); comm may be null. */
using ncclGetLastError_t = const char* (*)(ncclComm_t comm);

// Symmetric memory (NCCL 2.27+): a buffer of the same size on every rank, allocated by NCCL
// (cuMem) and registered as a window, which kernels of the ranks of one NVLink domain address
// directly (load/store accessible, "LSA").
struct ncclWindow_vidmem;
using ncclWindow_t = ncclWindow_vidmem*;
/** NCCL_WIN_COLL_SYMMETRIC: every rank registers a buffer of the same size (collective). */
constexpr int kWinCollSymmetric = 0x01;
using ncclMemAlloc_t = ncclResult_t (*)(void** ptr, size_t size);
using ncclMemFree_t = ncclResult_t (*)(void* ptr);
/** Collective: every rank registers its buffer of `size` bytes. */
using ncclCommWindowRegister_t = ncclResult_t (*)(ncclComm_t comm, void* buff, size_t size, ncclWindow_t* win, int winFlags);
using ncclCommWindowDeregister_t = ncclResult_t (*)(ncclComm_t comm, ncclWindow_t win);
/** NCCL 2.29+: world rank `peer`'s buffer as this GPU addresses it, or null when it is not load/store accessible. */
using ncclGetPeerDevicePointer_t = ncclResult_t (*)(ncclWindow_t window, size_t offset, int peer, void** outPtr);

// Every function the addon resolves; the struct members, the dlsym loop and the signature check
// are generated from this list.
#define WNDC_NCCL_FUNCTIONS(X)  \
  X(ncclGetVersion)             \
  X(ncclGetUniqueId)            \
  X(ncclCommInitRank)           \
  X(ncclCommInitRankConfig)     \
  X(ncclCommDestroy)            \
  X(ncclCommAbort)              \
  X(ncclCommGetAsyncError)      \
  X(ncclAllReduce)              \
  X(ncclBroadcast)              \
  X(ncclAllGather)              \
  X(ncclReduceScatter)          \
  X(ncclGroupStart)             \
  X(ncclGroupEnd)               \
  X(ncclGetErrorString)         \
  X(ncclGetLastError)

// Resolved when the library has them (null otherwise): symmetric memory, for the peers' rows.
#define WNDC_NCCL_OPTIONAL_FUNCTIONS(X) \
  X(ncclMemAlloc)                       \
  X(ncclMemFree)                        \
  X(ncclCommWindowRegister)             \
  X(ncclCommWindowDeregister)           \
  X(ncclGetPeerDevicePointer)

/** The loaded library's entry points, named as in NCCL: `nccl().ncclAllReduce(...)`. */
struct Nccl {
#define WNDC_FUNCTION_MEMBER(name) name##_t name = nullptr;
  WNDC_NCCL_FUNCTIONS(WNDC_FUNCTION_MEMBER)
  WNDC_NCCL_OPTIONAL_FUNCTIONS(WNDC_FUNCTION_MEMBER)
#undef WNDC_FUNCTION_MEMBER
};

/**
 * Finds and loads NCCL once (later calls return the same path); returns the file loaded.
 * Throws std::runtime_error naming every place searched and how to fix it (dynlib.cpp).
 */
std::string loadNccl();

/** The loaded entry points; throws std::runtime_error when loadNccl has not succeeded. */
const Nccl& nccl();

}  // namespace wndc::nccl
