// The peers' addresses of an NCCL symmetric window, through NCCL's device API (nccl_peer.cu, the
// one file built against NCCL's own headers, and only where build-native finds nccl_device.h).
// NCCL 2.29 has a host function for this (ncclGetPeerDevicePointer, used first: world.cpp); 2.28,
// on the GPU machines wndc is measured on, has only the device function ncclGetPeerPointer.
#pragma once

#include <string>
#include <vector>

namespace wndc {

/** NCCL_VERSION_CODE of the headers nccl_peer.cu was built with, or 0 when built without them. */
int ncclDeviceApiVersion();

/**
 * World rank r's buffer of `window` (an ncclWindow_t) as the current GPU addresses it, for every
 * rank r < size, into `out` (null where a rank is not load/store accessible). Returns "" on success,
 * else why not (built without the headers, a CUDA error).
 */
std::string peerPointersOnDevice(void* window, int size, std::vector<void*>& out);

}  // namespace wndc
