#include "world.h"

#include <cstdlib>

#include "nccl_peer.h"

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

std::string World::peerMemoryUnsupported() {
  // Whoever keeps NCCL off peer-to-peer paths (a stand-in for several hosts, a broken link) means
  // wndc's own reads too.
  const char* p2pDisable = std::getenv("NCCL_P2P_DISABLE");
  if (p2pDisable && std::string(p2pDisable) == "1") return "NCCL_P2P_DISABLE=1 is set (no GPU reads another's memory)";
  const auto& api = nccl::nccl();
  if (!api.ncclMemAlloc || !api.ncclMemFree || !api.ncclCommWindowRegister || !api.ncclCommWindowDeregister)
    return "the loaded NCCL has no symmetric memory (ncclCommWindowRegister: NCCL 2.27 or newer)";
  if (api.ncclGetPeerDevicePointer) return "";
  int version = 0;
  api.ncclGetVersion(&version);
  const int built = ncclDeviceApiVersion();
  const auto text = [](int v) { return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100); };
  if (built == 0) {
    std::vector<void*> unused;
    return peerPointersOnDevice(nullptr, 0, unused);
  }
  // The device API reads NCCL's window structure inline: headers and library must be one release.
  if (built / 100 != version / 100)
    return "the addon was built with NCCL " + text(built) + "'s device headers, but NCCL " + text(version) + " is loaded (rebuild the addon with this NCCL's headers)";
  return "";
}

nccl::ncclWindow_t World::registerWindow(void* buffer, size_t bytes, const char* what) {
  nccl::ncclWindow_t window = nullptr;
  check(nccl::nccl().ncclCommWindowRegister(live("ncclCommWindowRegister", what), buffer, bytes, &window, nccl::kWinCollSymmetric), "ncclCommWindowRegister",
        what);
  return window;
}

void World::deregisterWindow(nccl::ncclWindow_t window) {
  if (comm_ && window) nccl::nccl().ncclCommWindowDeregister(comm_, window);
}

PeerBuffer::PeerBuffer(World& world, size_t bytes, const char* what) : world_(world), bytes_(bytes), what_(what) {
  const nccl::ncclResult_t allocated = nccl::nccl().ncclMemAlloc(&local_, bytes);
  if (allocated != nccl::ncclSuccess) {
    local_ = nullptr;
    problem_ = "ncclMemAlloc of " + what_ + " (" + std::to_string(bytes >> 20) + " MiB, rank " + std::to_string(world.rank()) + "): " + ncclText(allocated, nullptr);
  }
}

void PeerBuffer::join() {
  if (!local_) throw Error("PeerBuffer::join without its memory (" + problem_ + ")");
  World& world = world_;
  const auto& api = nccl::nccl();
  window_ = world.registerWindow(local_, bytes_, what_.c_str());
  if (api.ncclGetPeerDevicePointer) {
    ranks_.assign(world.size(), nullptr);
    for (int r = 0; r < world.size(); r++) {
      const nccl::ncclResult_t result = api.ncclGetPeerDevicePointer(window_, 0, r, &ranks_[r]);
      if (result != nccl::ncclSuccess) {
        problem_ = "ncclGetPeerDevicePointer (rank " + std::to_string(r) + "): " + ncclText(result, nullptr);
        ranks_[r] = nullptr;
      }
    }
  } else {
    problem_ = peerPointersOnDevice(window_, world.size(), ranks_);
  }
  for (int r = 0; r < world.size() && problem_.empty(); r++)
    if (r != world.rank() && ranks_[r] == nullptr)
      problem_ = "rank " + std::to_string(r) + "'s memory is not load/store accessible from rank " + std::to_string(world.rank()) +
                 "'s GPU (another host, or no NVLink or peer access between the GPUs)";
  ranks_[world.rank()] = local_;
}

PeerBuffer::~PeerBuffer() {
  // After an abort the window's mappings are NCCL's to drop and kernels may still run: leave a
  // registered buffer to the driver (the process is on its way out or trains alone).
  if (window_ && world_.aborted()) return;
  if (window_) world_.deregisterWindow(window_);
  if (local_) nccl::nccl().ncclMemFree(local_);
}

void World::groupStart() { check(nccl::nccl().ncclGroupStart(), "ncclGroupStart", "a group of operations"); }

void World::groupEnd() { check(nccl::nccl().ncclGroupEnd(), "ncclGroupEnd", "a group of operations"); }

}  // namespace wndc
