#include "world.h"

namespace wndc {

std::string ncclText(nccl::ncclResult_t result, nccl::ncclComm_t comm) {
  const auto& api = nccl::nccl();
  std::string text = api.ncclGetErrorString ? api.ncclGetErrorString(result) : std::to_string(static_cast<int>(result));
  if (comm && api.ncclGetLastError) {
    const char* last = api.ncclGetLastError(comm);
    if (last && *last) text += std::string(": ") + last;
  }
  return text;
}

nccl::ncclUniqueId World::uniqueId() {
  nccl::loadNccl();
  nccl::ncclUniqueId id{};
  const nccl::ncclResult_t result = nccl::nccl().ncclGetUniqueId(&id);
  if (result != nccl::ncclSuccess) throw Error("ncclGetUniqueId: " + ncclText(result, nullptr));
  return id;
}

World::World(const nccl::ncclUniqueId& id, int rank, int size) : rank_(rank), size_(size) {
  nccl::loadNccl();
  if (size < 1 || rank < 0 || rank >= size) throw Error("rank " + std::to_string(rank) + " of a world of " + std::to_string(size));
  const nccl::ncclResult_t result = nccl::nccl().ncclCommInitRank(&comm_, size, id, rank);
  if (result != nccl::ncclSuccess) {
    comm_ = nullptr;
    throw Error("ncclCommInitRank (rank " + std::to_string(rank) + " of " + std::to_string(size) + "): " + ncclText(result, nullptr));
  }
}

World::~World() {
  if (comm_) nccl::nccl().ncclCommDestroy(comm_);
}

nccl::ncclComm_t World::live(const char* operation, const char* what) const {
  if (!comm_) throw Error(std::string(operation) + " of " + what + " (rank " + std::to_string(rank_) + " of " + std::to_string(size_) + "): the job's communicator was aborted");
  return comm_;
}

void World::check(nccl::ncclResult_t result, const char* operation, const char* what) {
  if (result == nccl::ncclSuccess) return;
  const std::string message = std::string(operation) + " of " + what + " (rank " + std::to_string(rank_) + " of " + std::to_string(size_) + "): " + ncclText(result, comm_);
  // The job cannot go on: abort, so that no later wait hangs on work the other ranks will not match.
  abort();
  throw Error(message);
}

void World::allReduceSum(float* data, size_t count, cudaStream_t stream, const char* what) {
  if (count == 0) return;
  check(nccl::nccl().ncclAllReduce(data, data, count, nccl::ncclFloat32, nccl::ncclSum, live("ncclAllReduce", what), stream), "ncclAllReduce", what);
}

void World::allReduceMax(void* data, size_t count, nccl::ncclDataType_t type, cudaStream_t stream, const char* what) {
  if (count == 0) return;
  check(nccl::nccl().ncclAllReduce(data, data, count, type, nccl::ncclMax, live("ncclAllReduce (max)", what), stream), "ncclAllReduce (max)", what);
}

void World::broadcast(void* data, size_t bytes, int root, cudaStream_t stream, const char* what) {
  if (bytes == 0) return;
  check(nccl::nccl().ncclBroadcast(data, data, bytes, nccl::ncclUint8, root, live("ncclBroadcast", what), stream), "ncclBroadcast", what);
}

void World::allGather(const void* send, void* receive, size_t bytes, cudaStream_t stream, const char* what) {
  if (bytes == 0) return;
  check(nccl::nccl().ncclAllGather(send, receive, bytes, nccl::ncclUint8, live("ncclAllGather", what), stream), "ncclAllGather", what);
}

std::string World::asyncError() const {
  if (!comm_ || !nccl::nccl().ncclCommGetAsyncError) return "";
  nccl::ncclResult_t state = nccl::ncclSuccess;
  if (nccl::nccl().ncclCommGetAsyncError(comm_, &state) != nccl::ncclSuccess) return "";
  return state == nccl::ncclSuccess || state == nccl::ncclInProgress ? "" : ncclText(state, comm_);
}

void World::abort() {
  if (comm_) nccl::nccl().ncclCommAbort(comm_);
  comm_ = nullptr;
}

void World::groupStart() { check(nccl::nccl().ncclGroupStart(), "ncclGroupStart", "a group of operations"); }

void World::groupEnd() { check(nccl::nccl().ncclGroupEnd(), "ncclGroupEnd", "a group of operations"); }

}  // namespace wndc
