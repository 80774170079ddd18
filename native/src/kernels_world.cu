// Data parallelism: the touched rows of a large table travel between ranks as packed records
// (row ids and gradient rows) rather than the whole table (see model.cu, exchangeTables).
#include "kernels.cuh"

namespace wndc {

namespace {

__global__ void packRows(const int* rows, const int* count, int capacity, const float* grad, int dim, int* record, int* overflow) {
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
    values[i] = grad[(long long)row * dim + d];
  }
}

__global__ void unpackRows(const int* records, long long words, int size, int self, int capacity, float* grad, int dim, unsigned char* touched) {
  const long long perRank = (long long)capacity * dim;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)size * perRank; i += (long long)gridDim.x * blockDim.x) {
    const int rank = static_cast<int>(i / perRank);
    if (rank == self) continue;
    const int* record = records + rank * words;
    const long long j = i % perRank;
    const long long k = j / dim;
    if (k >= record[0]) continue;
    const int d = static_cast<int>(j % dim);
    const int row = record[1 + k];
    const float* values = reinterpret_cast<const float*>(record + 1 + capacity);
    atomicAdd(&grad[(long long)row * dim + d], values[j]);
    if (d == 0) touched[row] = 1;
  }
}

}  // namespace

void launchPackRows(cudaStream_t s, const int* rows, const int* count, int capacity, const float* grad, int dim, int* record, int* overflow) {
  packRows<<<blocksFor((long long)capacity * dim, 256, 8192), 256, 0, s>>>(rows, count, capacity, grad, dim, record, overflow);
  checkLaunch("pack touched rows kernel");
}

void launchUnpackRows(cudaStream_t s, const int* records, long long words, int size, int self, int capacity, float* grad, int dim, unsigned char* touched) {
  unpackRows<<<blocksFor((long long)size * capacity * dim, 256, 8192), 256, 0, s>>>(records, words, size, self, capacity, grad, dim, touched);
  checkLaunch("unpack touched rows kernel");
}

}  // namespace wndc
