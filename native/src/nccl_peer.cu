// See nccl_peer.h. Built with NCCL's headers (WNDC_NCCL_DEVICE_API, set by build-native.mjs for
// this file alone): the rest of the addon declares NCCL itself (nccl_api.h) and loads it at run
// time, so this file includes nothing of wndc's that declares NCCL too.
#include "nccl_peer.h"

#include <cuda_runtime.h>

#if WNDC_NCCL_DEVICE_API
#include <nccl.h>
#include <nccl_device.h>
#endif

namespace wndc {

#if WNDC_NCCL_DEVICE_API

namespace {

__global__ void peerPointers(ncclWindow_t window, int size, void** out) {
  const int rank = blockIdx.x * blockDim.x + threadIdx.x;
  if (rank < size) out[rank] = ncclGetPeerPointer(window, 0, rank);
}

std::string cudaText(cudaError_t status, const char* what) { return std::string(what) + ": " + cudaGetErrorString(status); }

}  // namespace

int ncclDeviceApiVersion() { return NCCL_VERSION_CODE; }

std::string peerPointersOnDevice(void* window, int size, std::vector<void*>& out) {
  out.assign(size, nullptr);
  void** device = nullptr;
  cudaError_t status = cudaMalloc(&device, sizeof(void*) * size);
  if (status != cudaSuccess) return cudaText(status, "cudaMalloc (peer pointers)");
  peerPointers<<<(size + 31) / 32, 32>>>(static_cast<ncclWindow_t>(window), size, device);
  status = cudaGetLastError();
  if (status == cudaSuccess) status = cudaMemcpy(out.data(), device, sizeof(void*) * size, cudaMemcpyDeviceToHost);
  cudaFree(device);
  return status == cudaSuccess ? "" : cudaText(status, "the peer pointer kernel");
}

#else

int ncclDeviceApiVersion() { return 0; }

std::string peerPointersOnDevice(void*, int size, std::vector<void*>& out) {
  out.assign(size, nullptr);
  return "this addon was built without NCCL's device headers (nccl_device.h, NCCL 2.28+): rebuild it where they are "
         "(set CUDA_INCLUDE_DIRS to their folder, e.g. site-packages/nvidia/nccl/include), or use NCCL 2.29+";
}

#endif

}  // namespace wndc
