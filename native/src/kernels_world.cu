// Data parallelism: the touched rows of a large table travel between ranks as packed records
// (row ids and gradient rows) rather than the whole table (see model.cu, exchange). Packing moves
// a rank's rows out of its accumulator; every rank then adds the records back in rank order, so
// each row's sum is ((0 + g_0) + g_1) + ... on every rank: the replicas stay bit-identical.
#include "kernels.cuh"

namespace wndc {

namespace {

__global__ void packRows(const int* rows, const int* count, int capacity, float* grad, int dim, int* record, int* overflow) {
  const int n = *count;
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    record[0] = n <= capacity ? n : capacity;
    if (n > capacity) *overflow = 1;
  }
  const int used = n <= capacity ? n : capacity;
  int* ids = record + 1;
  float* values = reinterpret_cast<float*>(record + 1 + capacity);
  const long long total = (long long)used * dim;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    const long long k = i / dim;
    const int d = static_cast<int>(i % dim);
    const int row = rows[k];
    if (d == 0) ids[k] = row;
    float* g = &grad[(long long)row * dim + d];
    values[i] = *g;
    *g = 0.0f;
  }
}

/** Adds one rank's record into the accumulator; its rows are distinct, so no two threads meet. */
__global__ void unpackRecord(const int* record, int capacity, float* grad, int dim, unsigned char* touched) {
  const long long total = (long long)record[0] * dim;
  const int* ids = record + 1;
  const float* values = reinterpret_cast<const float*>(record + 1 + capacity);
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    const long long k = i / dim;
    const int d = static_cast<int>(i % dim);
    const int row = ids[k];
    grad[(long long)row * dim + d] += values[i];
    if (d == 0) touched[row] = 1;
  }
}

}  // namespace

void launchPackRows(cudaStream_t s, const int* rows, const int* count, int capacity, float* grad, int dim, int* record, int* overflow) {
  packRows<<<blocksFor((long long)capacity * dim, 256, 8192), 256, 0, s>>>(rows, count, capacity, grad, dim, record, overflow);
  checkLaunch("pack touched rows kernel");
}

void launchUnpackRecords(cudaStream_t s, const int* records, long long words, int size, int capacity, float* grad, int dim, unsigned char* touched) {
  for (int rank = 0; rank < size; rank++) {
    unpackRecord<<<blocksFor((long long)capacity * dim, 256, 8192), 256, 0, s>>>(records + rank * words, capacity, grad, dim, touched);
    checkLaunch("unpack touched rows kernel");
  }
}

}  // namespace wndc
