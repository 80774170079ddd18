// One rank of a data-parallel job on GPUs: an NCCL communicator (NCCL loaded at run time, see
// nccl_api.h) and the collective operations the training step needs, each checked so that a
// failure becomes an Error naming the operation, this rank and NCCL's reason.
#pragma once

#include <string>
#include <vector>

#include "common.h"
#include "nccl_api.h"

namespace wndc {

/** NCCL's name for `result`, and the communicator's last error detail when there is one (comm may be null). */
std::string ncclText(nccl::ncclResult_t result, nccl::ncclComm_t comm);

class World {
 public:
  /** Joins the job `id` (made by rank 0 with uniqueId()) as `rank` of `size`; blocks until every rank has joined. */
  World(const nccl::ncclUniqueId& id, int rank, int size);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  static nccl::ncclUniqueId uniqueId();

  int rank() const { return rank_; }
  int size() const { return size_; }

  void allReduceSum(float* data, size_t count, cudaStream_t stream, const char* what);
  void allReduceMax(void* data, size_t count, nccl::ncclDataType_t type, cudaStream_t stream, const char* what);
  void broadcast(void* data, size_t bytes, int root, cudaStream_t stream, const char* what);
  /** Every rank's `bytes` bytes of `send`, rank after rank, into `receive` (size x bytes). */
  void allGather(const void* send, void* receive, size_t bytes, cudaStream_t stream, const char* what);
  /** Between these, NCCL operations are queued together and launched as one at groupEnd. */
  void groupStart();
  void groupEnd();
  /**
   * Gives the communicator up without waiting for the other ranks (ncclCommAbort): NCCL kernels
   * still waiting for a rank that died end. No operation may follow.
   */
  void abort();
  bool aborted() const { return comm_ == nullptr; }
  /** An error NCCL met while running this rank's operations (a peer's connection lost...), or "" when none. */
  std::string asyncError() const;

  /**
   * Why this process cannot use symmetric memory (PeerBuffer), or "" when it can: the loaded NCCL
   * lacks it (before 2.27), or nothing here gives the peers' addresses (ncclGetPeerDevicePointer,
   * NCCL 2.29+, or the addon built with the device headers of the loaded NCCL's version). Says
   * nothing of the other ranks: agree on it before constructing a PeerBuffer.
   */
  static std::string peerMemoryUnsupported();
  /** Collective: registers `bytes` of `buffer` (from ncclMemAlloc) as a symmetric window. */
  nccl::ncclWindow_t registerWindow(void* buffer, size_t bytes, const char* what);
  /** Collective; quiet (for destructors); nothing after an abort. */
  void deregisterWindow(nccl::ncclWindow_t window);

 private:
  /** Throws an Error naming the operation, this rank and NCCL's reason, after aborting the communicator. */
  void check(nccl::ncclResult_t result, const char* operation, const char* what);
  /** The communicator, or an Error when it was aborted. */
  nccl::ncclComm_t live(const char* operation, const char* what) const;

  nccl::ncclComm_t comm_ = nullptr;
  int rank_, size_;
};

/**
 * NCCL symmetric memory: a buffer of the same `bytes` on every rank, registered as one window, whose
 * copies on the other ranks this rank's kernels read directly (over NVLink). Two phases, each
 * followed by the ranks agreeing, since each rank learns only its own outcome: the constructor
 * allocates (rank-local; problem() says why it could not), then every rank calls join() together
 * (collective: the window's registration), after which problem() says why the peers' addresses are
 * not all known (a rank on another host, no peer access between the GPUs). A joined buffer must be
 * destroyed by every rank together (deregistration is collective), unless the world was aborted.
 */
class PeerBuffer {
 public:
  PeerBuffer(World& world, size_t bytes, const char* what);
  ~PeerBuffer();
  /** Collective: registers the buffer and learns every rank's address of it; throws (aborting the world) on an NCCL error. */
  void join();
  PeerBuffer(const PeerBuffer&) = delete;
  PeerBuffer& operator=(const PeerBuffer&) = delete;

  void* local() const { return local_; }
  size_t bytes() const { return bytes_; }
  /** Each rank's buffer as this GPU addresses it (this rank's: local()). */
  const std::vector<void*>& ranks() const { return ranks_; }
  const std::string& problem() const { return problem_; }

 private:
  World& world_;
  size_t bytes_;
  std::string what_;
  void* local_ = nullptr;
  nccl::ncclWindow_t window_ = nullptr;
  std::vector<void*> ranks_;
  std::string problem_;
};

}  // namespace wndc
