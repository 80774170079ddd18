// The host-side collectives of GPU ranks that no MPI started (runtime/distributed/nccl.ts): sums,
// broadcasts and all-gathers of host buffers over an NCCL communicator of their own, separate from
// the one a model joins for its gradients (world.h). Each operation copies the host bytes to a
// device scratch buffer, runs NCCL on this object's stream, and waits for the result by polling
// (cudaStreamQuery, ncclCommGetAsyncError) for at most `timeoutSeconds`: a rank that has died or
// hangs turns into an Error naming the operation, this rank and the timeout, and the communicator
// is aborted, instead of a job that waits forever.
//
// The communicator is non-blocking (ncclConfig_t.blocking = 0), so that joining it and NCCL's
// connection set-up inside a call are under the same timeout. Operations may run on any thread,
// one at a time (the caller serializes them); abort() is the one call that may come from another
// thread, and only while no operation runs.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common.h"
#include "nccl_api.h"

namespace wndc {

class HostCollective {
 public:
  /**
   * Starts joining the job `id` (rank 0's ncclUniqueId) as `rank` of `size` on GPU `device`; returns
   * at once. The first operation waits for the join (under its timeout).
   */
  HostCollective(const nccl::ncclUniqueId& id, int rank, int size, int device, double timeoutSeconds);
  ~HostCollective();
  HostCollective(const HostCollective&) = delete;
  HostCollective& operator=(const HostCollective&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int device() const { return device_; }

  /** Sums `count` values of `data` (ncclFloat32 or ncclFloat64) over the ranks, in place. */
  void allReduceSum(void* data, size_t count, nccl::ncclDataType_t type);
  /** Root's `bytes` bytes of `data` into every rank's `data`. */
  void broadcast(void* data, size_t bytes, int root);
  /** Every rank's bytes, in rank order; the lengths may differ (gathered first, then padded to the longest). */
  std::vector<std::vector<uint8_t>> allGather(const uint8_t* data, size_t bytes);
  /** Returns when every rank has called it. */
  void barrier();

  /** Frees the communicator without waiting for the other ranks (after the last operation). */
  void destroy();
  /** Like destroy(), for a failed job: running operations stop. */
  void abort();

 private:
  using Clock = std::chrono::steady_clock;

  /** Sets the device, and waits for the join; throws when an earlier failure broke the communicator. */
  Clock::time_point begin(const std::string& what);
  /** Checks an NCCL call's result, then waits (polling) until its work and the stream's are done. */
  void complete(nccl::ncclResult_t result, const char* call, const std::string& what, Clock::time_point started);
  /** Polls until ncclCommGetAsyncError is no longer ncclInProgress (and the stream is idle when `stream`). */
  void waitFor(bool stream, const char* call, const std::string& what, Clock::time_point started);
  [[noreturn]] void fail(const std::string& message);
  void* scratch(size_t bytes);
  std::string where() const;

  nccl::ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratchBytes_ = 0;
  int rank_, size_, device_;
  double timeoutSeconds_;
  bool joined_ = false;
  /** Why the communicator was aborted (empty while it works). */
  std::string broken_;
};

}  // namespace wndc
