#include "host_collective.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "world.h"  // ncclText

namespace wndc {

namespace {

std::string secondsText(double seconds) {
  char text[32];
  snprintf(text, sizeof text, "%g s", seconds);
  return text;
}

}  // namespace

HostCollective::HostCollective(const nccl::ncclUniqueId& id, int rank, int size, int device, double timeoutSeconds)
    : rank_(rank), size_(size), device_(device), timeoutSeconds_(timeoutSeconds) {
  nccl::loadNccl();
  if (size < 1 || rank < 0 || rank >= size) throw Error("rank " + std::to_string(rank) + " of a world of " + std::to_string(size));
  if (!(timeoutSeconds > 0)) throw Error("the timeout must be a positive number of seconds");
  check(cudaSetDevice(device), "cudaSetDevice");
  // Non-blocking: never ordered behind the default stream, whatever else runs on the device.
  check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  nccl::ncclConfig_v21400 config = nccl::nonBlockingConfig();
  const nccl::ncclResult_t result = nccl::nccl().ncclCommInitRankConfig(&comm_, size, id, rank, &config);
  if (result != nccl::ncclSuccess && result != nccl::ncclInProgress) {
    if (comm_) nccl::nccl().ncclCommAbort(comm_);
    comm_ = nullptr;
    cudaStreamDestroy(stream_);
    stream_ = nullptr;
    throw Error("ncclCommInitRankConfig" + where() + ": " + ncclText(result, nullptr));
  }
}

HostCollective::~HostCollective() {
  cudaSetDevice(device_);
  abort();
  if (scratch_) cudaFree(scratch_);
  if (stream_) cudaStreamDestroy(stream_);
}

std::string HostCollective::where() const { return " (rank " + std::to_string(rank_) + " of " + std::to_string(size_) + ")"; }

void HostCollective::destroy() { abort(); }

void HostCollective::abort() {
  // ncclCommAbort rather than ncclCommDestroy: it frees this rank's side without waiting for the
  // others, so a rank that has died cannot hold up the exit of the rest.
  if (comm_) nccl::nccl().ncclCommAbort(comm_);
  comm_ = nullptr;
  if (broken_.empty()) broken_ = "the host collective was closed";
}

void HostCollective::fail(const std::string& message) {
  broken_ = message;
  if (comm_) nccl::nccl().ncclCommAbort(comm_);
  comm_ = nullptr;
  throw Error(message);
}

HostCollective::Clock::time_point HostCollective::begin(const std::string& what) {
  if (!broken_.empty()) throw Error(what + where() + " cannot run: " + broken_);
  check(cudaSetDevice(device_), "cudaSetDevice");
  const Clock::time_point started = Clock::now();
  if (!joined_) {
    waitFor(false, "ncclCommInitRankConfig", "joining the job", started);
    joined_ = true;
  }
  return started;
}

void HostCollective::waitFor(bool stream, const char* call, const std::string& what, Clock::time_point started) {
  auto pause = std::chrono::microseconds(20);
  for (;;) {
    nccl::ncclResult_t state = nccl::ncclSuccess;
    const nccl::ncclResult_t queried = nccl::nccl().ncclCommGetAsyncError(comm_, &state);
    if (queried != nccl::ncclSuccess) fail(std::string("ncclCommGetAsyncError after ") + call + " of " + what + where() + ": " + ncclText(queried, comm_));
    if (state != nccl::ncclSuccess && state != nccl::ncclInProgress) fail(std::string(call) + " of " + what + where() + ": " + ncclText(state, comm_));
    if (state == nccl::ncclSuccess) {
      if (!stream) return;
      const cudaError_t status = cudaStreamQuery(stream_);
      if (status == cudaSuccess) return;
      if (status != cudaErrorNotReady) {
        cudaGetLastError();
        fail(std::string(call) + " of " + what + where() + ": " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")");
      }
    }
    const double waited = std::chrono::duration<double>(Clock::now() - started).count();
    if (waited > timeoutSeconds_) {
      fail(std::string(call) + " of " + what + where() + " did not finish within " + secondsText(timeoutSeconds_) +
           ": another rank has died, hangs or never called it; the communicator was aborted");
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(1000));
  }
}

void HostCollective::complete(nccl::ncclResult_t result, const char* call, const std::string& what, Clock::time_point started) {
  if (result != nccl::ncclSuccess && result != nccl::ncclInProgress) fail(std::string(call) + " of " + what + where() + ": " + ncclText(result, comm_));
  waitFor(true, call, what, started);
}

void* HostCollective::scratch(size_t bytes) {
  if (bytes <= scratchBytes_) return scratch_;
  // Grown to the next power of two, so a run of growing requests reallocates only a few times.
  // cudaFree waits for the device; host collectives never overlap a model's steps (the trainer
  // awaits each step), so that wait is short.
  size_t capacity = 256;
  while (capacity < bytes) capacity *= 2;
  if (scratch_) check(cudaFree(scratch_), "cudaFree (host collective scratch)");
  scratch_ = nullptr;
  scratchBytes_ = 0;
  const cudaError_t status = cudaMalloc(&scratch_, capacity);
  if (status != cudaSuccess) {
    cudaGetLastError();
    scratch_ = nullptr;
    throw Error("cudaMalloc of the host collective's scratch buffer (" + mib(static_cast<double>(capacity)) + "): " + cudaGetErrorName(status) + " (" +
                cudaGetErrorString(status) + ")");
  }
  scratchBytes_ = capacity;
  return scratch_;
}

void HostCollective::allReduceSum(void* data, size_t count, nccl::ncclDataType_t type) {
  if (type != nccl::ncclFloat32 && type != nccl::ncclFloat64) throw Error("allReduceSum sums float32 or float64 values");
  const size_t bytes = count * (type == nccl::ncclFloat64 ? 8 : 4);
  const std::string what = "an all-reduce of " + std::to_string(count) + (type == nccl::ncclFloat64 ? " float64" : " float32");
  const Clock::time_point started = begin(what);
  if (count == 0) return;
  void* device = scratch(bytes);
  check(cudaMemcpyAsync(device, data, bytes, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync (all-reduce input)");
  complete(nccl::nccl().ncclAllReduce(device, device, count, type, nccl::ncclSum, comm_, stream_), "ncclAllReduce", what, started);
  check(cudaMemcpyAsync(data, device, bytes, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync (all-reduce result)");
  check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (all-reduce result)");
}

void HostCollective::broadcast(void* data, size_t bytes, int root) {
  if (root < 0 || root >= size_) throw Error("broadcast from rank " + std::to_string(root) + " in a world of " + std::to_string(size_));
  const std::string what = "a broadcast of " + std::to_string(bytes) + " bytes from rank " + std::to_string(root);
  const Clock::time_point started = begin(what);
  if (bytes == 0) return;
  void* device = scratch(bytes);
  if (rank_ == root) check(cudaMemcpyAsync(device, data, bytes, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync (broadcast input)");
  complete(nccl::nccl().ncclBroadcast(device, device, bytes, nccl::ncclUint8, root, comm_, stream_), "ncclBroadcast", what, started);
  if (rank_ != root) {
    check(cudaMemcpyAsync(data, device, bytes, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync (broadcast result)");
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (broadcast result)");
  }
}

std::vector<std::vector<uint8_t>> HostCollective::allGather(const uint8_t* data, size_t bytes) {
  const std::string what = "an all-gather of " + std::to_string(bytes) + " bytes";
  const Clock::time_point started = begin(what);
  const size_t ranks = static_cast<size_t>(size_);

  // Every rank's length (the last slot of the scratch is this rank's, the first `ranks` receive).
  std::vector<uint64_t> lengths(ranks + 1, 0);
  lengths[ranks] = bytes;
  auto* counts = static_cast<uint64_t*>(scratch((ranks + 1) * sizeof(uint64_t)));
  check(cudaMemcpyAsync(counts + ranks, &lengths[ranks], sizeof(uint64_t), cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync (all-gather length)");
  complete(nccl::nccl().ncclAllGather(counts + ranks, counts, 1, nccl::ncclUint64, comm_, stream_), "ncclAllGather", what + " (the lengths)", started);
  check(cudaMemcpyAsync(lengths.data(), counts, ranks * sizeof(uint64_t), cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync (all-gather lengths)");
  check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (all-gather lengths)");
  if (lengths[static_cast<size_t>(rank_)] != bytes) throw Error("internal: the all-gathered lengths lost this rank's");
  const size_t longest = *std::max_element(lengths.begin(), lengths.begin() + static_cast<long>(ranks));

  std::vector<std::vector<uint8_t>> parts(ranks);
  if (longest == 0) return parts;
  // Then the bytes, each rank's padded to the longest: `ranks` blocks received, this rank's block after them.
  auto* block = static_cast<uint8_t*>(scratch((ranks + 1) * longest));
  uint8_t* mine = block + ranks * longest;
  if (bytes > 0) check(cudaMemcpyAsync(mine, data, bytes, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync (all-gather input)");
  if (bytes < longest) check(cudaMemsetAsync(mine + bytes, 0, longest - bytes, stream_), "cudaMemsetAsync (all-gather padding)");
  complete(nccl::nccl().ncclAllGather(mine, block, longest, nccl::ncclUint8, comm_, stream_), "ncclAllGather", what, started);
  std::vector<uint8_t> all(ranks * longest);
  check(cudaMemcpyAsync(all.data(), block, all.size(), cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync (all-gather result)");
  check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (all-gather result)");
  for (size_t r = 0; r < ranks; r++) parts[r].assign(all.begin() + static_cast<long>(r * longest), all.begin() + static_cast<long>(r * longest + lengths[r]));
  return parts;
}

void HostCollective::barrier() {
  const Clock::time_point started = begin("a barrier");
  void* device = scratch(sizeof(float));
  check(cudaMemsetAsync(device, 0, sizeof(float), stream_), "cudaMemsetAsync (barrier)");
  complete(nccl::nccl().ncclAllReduce(device, device, 1, nccl::ncclFloat32, nccl::ncclSum, comm_, stream_), "ncclAllReduce", "a barrier", started);
}

}  // namespace wndc
