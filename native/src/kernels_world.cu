// Data parallelism: the touched rows of a large table travel between ranks as packed records
// (row ids and gradient rows) rather than the whole table (see model.cu, exchangeTables). In
// general, packing moves a rank's rows out of its accumulator and every rank then adds the records
// back in rank order, so each row's sum is ((0 + g_0) + g_1) + ... on every rank: the replicas
// stay bit-identical. Two ranks need less: a + b == b + a in floating point, so each rank keeps its
// own rows and adds only the other's record (halving the traffic of both kernels).
// Records carry float32 values, or bfloat16 ones (half the bytes; --amp): then a rank that keeps
// its own rows rounds them to bfloat16 as well, so that both ranks add the same two numbers.
#include <cuda_bf16.h>

#include <algorithm>
#include <type_traits>

#include "kernels.cuh"

namespace wndc {

namespace {

struct Bf16x4 {
  __nv_bfloat162 lo, hi;
};

__device__ inline Bf16x4 toBf16(float4 v) { return {__floats2bfloat162_rn(v.x, v.y), __floats2bfloat162_rn(v.z, v.w)}; }
__device__ inline float4 toFloat(Bf16x4 v) {
  const float2 lo = __bfloat1622float2(v.lo), hi = __bfloat1622float2(v.hi);
  return make_float4(lo.x, lo.y, hi.x, hi.y);
}
__device__ inline float4 toFloat(float4 v) { return v; }
__device__ inline float4 plus(float4 a, float4 b) { return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w); }

/**
 * The rows a record holds, written by the first thread: this rank's count. The caller's capacity
 * is the largest count over the ranks, so it always fits; the min only keeps a bad count in bounds.
 */
__device__ inline int recordRows(const int* count, int capacity, int* record) {
  const int used = min(*count, capacity);
  if (blockIdx.x == 0 && threadIdx.x == 0) record[0] = used;
  return used;
}

/** Rows of whole float4s (dim % 4 == 0, 16-byte aligned rows); `R` is float4 or Bf16x4. */
template <typename R>
__global__ void packRows4(const int* rows, const int* count, int capacity, float* grad, int dim, int* record, PackMode mode) {
  const int used = recordRows(count, capacity, record);
  int* ids = record + 1;
  R* values = reinterpret_cast<R*>(record + recordValuesOffset(capacity));
  const int vectors = dim / 4;
  const long long total = (long long)used * vectors;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    const long long k = i / vectors;
    const int v = static_cast<int>(i - k * vectors);
    const int row = rows[k];
    if (v == 0) ids[k] = row;
    float4* g = reinterpret_cast<float4*>(grad + (long long)row * dim) + v;
    const float4 value = *g;
    if constexpr (std::is_same<R, float4>::value) {
      values[i] = value;
      if (mode == PackMode::Clear) *g = make_float4(0.f, 0.f, 0.f, 0.f);
    } else {
      const Bf16x4 rounded = toBf16(value);
      values[i] = rounded;
      if (mode == PackMode::Clear) *g = make_float4(0.f, 0.f, 0.f, 0.f);
      if (mode == PackMode::Keep) *g = toFloat(rounded);
    }
  }
}

/** Any width, float values. */
__global__ void packRows1(const int* rows, const int* count, int capacity, float* grad, int dim, int* record, PackMode mode) {
  const int used = recordRows(count, capacity, record);
  int* ids = record + 1;
  float* values = reinterpret_cast<float*>(record + recordValuesOffset(capacity));
  const long long total = (long long)used * dim;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    const long long k = i / dim;
    const int d = static_cast<int>(i - k * dim);
    const int row = rows[k];
    if (d == 0) ids[k] = row;
    float* g = &grad[(long long)row * dim + d];
    values[i] = *g;
    if (mode == PackMode::Clear) *g = 0.0f;
  }
}

/** Adds one rank's record into the accumulator; its rows are distinct, so no two threads meet. */
template <typename R>
__global__ void unpackRecord4(const int* record, int capacity, float* grad, int dim, unsigned char* touched) {
  const int vectors = dim / 4;
  const long long total = (long long)record[0] * vectors;
  const int* ids = record + 1;
  const R* values = reinterpret_cast<const R*>(record + recordValuesOffset(capacity));
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    const long long k = i / vectors;
    const int v = static_cast<int>(i - k * vectors);
    const int row = ids[k];
    float4* g = reinterpret_cast<float4*>(grad + (long long)row * dim) + v;
    *g = plus(*g, toFloat(values[i]));
    if (v == 0) touched[row] = 1;
  }
}

__global__ void unpackRecord1(const int* record, int capacity, float* grad, int dim, unsigned char* touched) {
  const long long total = (long long)record[0] * dim;
  const int* ids = record + 1;
  const float* values = reinterpret_cast<const float*>(record + recordValuesOffset(capacity));
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    const long long k = i / dim;
    const int d = static_cast<int>(i - k * dim);
    const int row = ids[k];
    grad[(long long)row * dim + d] += values[i];
    if (d == 0) touched[row] = 1;
  }
}

/** Flagged in one rank's flags (1), or not (0). */
struct OwnFlag {
  const unsigned char* flags;
  __device__ unsigned operator()(long long i) const { return flags[i] != 0 ? 1u : 0u; }
};

/** The ranks (bit r) whose flag of row begin + i is set (their flags read directly: symmetric memory). */
struct AnyRankFlag {
  PeerRows peers;
  long long begin;
  __device__ unsigned operator()(long long i) const {
    if (peers.owner >= 0 && (begin + i) % peers.size != peers.owner) return 0u;
    unsigned ranks = 0;
    for (int r = 0; r < peers.size; r++)
      if (peers.touched[r][begin + i] != 0) ranks |= 1u << r;
    return ranks;
  }
};

/**
 * Appends offset + i * stride for the indices i < rows where `flagged(i)` != 0 to `list` (and that
 * value to `values`, when given): one pass, one atomic
 * per block and step (the block's warps take consecutive places). The order is the blocks' arrival order: every
 * use of these lists treats each row on its own (a record's rows are distinct; the optimizers
 * update each row alone), so the sums and updates do not depend on it.
 */
template <typename Flagged>
__device__ void compactFlagged(long long rows, Flagged flagged, int* list, int* count, long long offset = 0, unsigned* values = nullptr, long long stride = 1) {
  __shared__ int warpCounts[32];
  __shared__ int blockBase;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (long long start = (long long)blockIdx.x * blockDim.x; start < rows; start += (long long)gridDim.x * blockDim.x) {
    const long long i = start + threadIdx.x;
    const unsigned value = i < rows ? flagged(i) : 0u;
    const bool on = value != 0u;
    const unsigned mask = __ballot_sync(0xffffffffu, on);
    if (lane == 0) warpCounts[warp] = __popc(mask);
    __syncthreads();
    if (threadIdx.x == 0) {
      int total = 0;
      for (int w = 0; w < warps; w++) {
        const int c = warpCounts[w];
        warpCounts[w] = total;
        total += c;
      }
      blockBase = total > 0 ? atomicAdd(count, total) : 0;
    }
    __syncthreads();
    if (on) {
      const int place = blockBase + warpCounts[warp] + __popc(mask & ((1u << lane) - 1u));
      list[place] = static_cast<int>(offset + i * stride);
      if (values) values[place] = value;
    }
    __syncthreads();
  }
}

/** Range blockIdx.y's flagged indices. */
__global__ void listFlagged(const FlagRange* ranges) {
  const FlagRange r = ranges[blockIdx.y];
  compactFlagged(r.rows, OwnFlag{r.flags}, r.list, r.count, r.offset);
}

/** Range blockIdx.y's rows flagged on any rank, as rows of the whole accumulator. */
__global__ void listAnyRank(PeerRows peers, const RowRange* ranges, int* list, int* count) {
  const RowRange r = ranges[blockIdx.y];
  compactFlagged(r.rows, AnyRankFlag{peers, r.begin}, list, count, r.begin, peers.listRanks);
}

/**
 * Pushed rows: the ranks (bit r) that flagged this rank's row first + i * size of one table: this
 * rank in its own flags, the others in its inbox (that row's index there is i).
 */
struct OwnedFlag {
  PeerRows peers;
  PeerTable table;
  long long first;
  __device__ unsigned operator()(long long i) const {
    unsigned ranks = 0;
    for (int r = 0; r < peers.size; r++)
      if (*rankFlag(peers, r, first + i * peers.size, table.inboxFlagBase + i) != 0) ranks |= 1u << r;
    return ranks;
  }
};

/** Table blockIdx.y's rows of this rank's that any rank flagged (see launchListOwned). */
__global__ void listOwned(PeerRows peers, int* list, int* count) {
  const PeerTable table = peers.tables[blockIdx.y];
  const long long size = peers.size, end = table.rowBase + table.rows;
  // This rank's first row of the table (rows are owned by row % size), and how many it owns.
  const long long first = table.rowBase + ((peers.owner - table.rowBase % size) % size + size) % size;
  const long long rows = first < end ? (end - first + size - 1) / size : 0;
  compactFlagged(rows, OwnedFlag{peers, table, first}, list, count, first, peers.listRanks, size);
}

/** Where row `row` of `table` goes in its owner's (rank row % size) inbox: this rank's slot there. */
__device__ __forceinline__ float* inboxRowOf(const PeerRows& peers, const PeerTable& table, long long row) {
  const int owner = static_cast<int>(row % peers.size);
  const long long inboxRow = (row - table.rowBase) / peers.size;
  return peers.grads[owner] + peers.inboxAt + inboxSlot(peers.owner, owner) * peers.inboxSlice + table.inboxGradBase + inboxRow * table.dim;
}

/** That row's flag there. */
__device__ __forceinline__ unsigned char* inboxFlagOf(const PeerRows& peers, const PeerTable& table, long long row) {
  const int owner = static_cast<int>(row % peers.size);
  const long long inboxRow = (row - table.rowBase) / peers.size;
  return peers.touched[owner] + peers.inboxFlagsAt + inboxSlot(peers.owner, owner) * peers.flagSlice + table.inboxFlagBase + inboxRow;
}

/**
 * Row `row` of `table` (this rank flagged it; rank row % size owns it) by `lanes` lanes from `lane`:
 * copied into its owner's inbox and flagged there, then cleared here (the owner's optimizer adds it
 * and clears it there).
 */
__device__ __forceinline__ void pushRow(const PeerRows& peers, const PeerTable& table, long long row, int lane, int lanes, float* keyGrad,
                                        unsigned char* touched) {
  const int dim = table.dim;
  float* from = keyGrad + table.gradBase + (row - table.rowBase) * dim;
  float* to = inboxRowOf(peers, table, row);
  if (dim % 4 == 0 && (reinterpret_cast<uintptr_t>(from) | reinterpret_cast<uintptr_t>(to)) % 16 == 0) {
    for (int d = lane * 4; d < dim; d += lanes * 4) {
      float4* f = reinterpret_cast<float4*>(from + d);
      *reinterpret_cast<float4*>(to + d) = *f;
      *f = make_float4(0.f, 0.f, 0.f, 0.f);
    }
  } else {
    for (int d = lane; d < dim; d += lanes) {
      to[d] = from[d];
      from[d] = 0.0f;
    }
  }
  if (lane == 0) {
    *inboxFlagOf(peers, table, row) = 1;
    touched[row] = 0;
  }
}

constexpr int kPushBatch = 8;

/**
 * Table blockIdx.y's rows this rank flagged that other ranks own, 32 consecutive rows a warp: rows
 * of at most 4 floats a lane each, wider ones by the whole warp in turn.
 */
__global__ void pushRows(PeerRows peers, float* keyGrad, unsigned char* touched) {
  const PeerTable table = peers.tables[blockIdx.y];
  const int lane = threadIdx.x & 31;
  const long long warps = (long long)gridDim.x * (blockDim.x >> 5);
  const long long warp = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const bool narrow = table.dim <= 4;
  for (long long first = warp * 32; first < table.rows; first += warps * 32) {
    const long long row = table.rowBase + first + lane;
    const bool push = first + lane < table.rows && touched[row] != 0 && row % peers.size != peers.owner;
    if (narrow) {
      if (push) pushRow(peers, table, row, 0, 1, keyGrad, touched);
      continue;
    }
    unsigned wide = __ballot_sync(0xffffffffu, push);
    // Rows of whole float4s, at most a warp's worth (one float4 a lane): kPushBatch at a time, every
    // load issued before the first store (the loads wait on memory; the stores over NVLink do not).
    if (table.dim % 4 == 0 && table.dim <= 128 && table.gradBase % 4 == 0 && peers.inboxSlice % 4 == 0 && table.inboxGradBase % 4 == 0) {
      const bool mine = lane * 4 < table.dim;
      while (wide != 0u) {
        long long rows[kPushBatch];
        float4 values[kPushBatch];
#pragma unroll
        for (int k = 0; k < kPushBatch; k++) {
          rows[k] = wide != 0u ? table.rowBase + first + __ffs(wide) - 1 : -1;
          wide &= wide - 1u;
          if (rows[k] >= 0 && mine) values[k] = reinterpret_cast<const float4*>(keyGrad + table.gradBase + (rows[k] - table.rowBase) * table.dim)[lane];
        }
#pragma unroll
        for (int k = 0; k < kPushBatch; k++) {
          if (rows[k] < 0) continue;
          if (mine) {
            reinterpret_cast<float4*>(inboxRowOf(peers, table, rows[k]))[lane] = values[k];
            reinterpret_cast<float4*>(keyGrad + table.gradBase + (rows[k] - table.rowBase) * table.dim)[lane] = make_float4(0.f, 0.f, 0.f, 0.f);
          }
          if (lane == 0) {
            *inboxFlagOf(peers, table, rows[k]) = 1;
            touched[rows[k]] = 0;
          }
        }
      }
      continue;
    }
    for (; wide != 0u; wide &= wide - 1u) pushRow(peers, table, table.rowBase + first + __ffs(wide) - 1, lane, 32, keyGrad, touched);
  }
}

__global__ void gatherOwnedRows(const float* local, float* out, long long rows, int dim, long long rowBase, int size, const long long* offsets) {
  const long long total = rows * dim;
  for (long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x; k < total; k += (long long)gridDim.x * blockDim.x) {
    const int owner = static_cast<int>((rowBase + k / dim) % size);
    out[k] = *reinterpret_cast<const float*>(reinterpret_cast<const char*>(local + k) + offsets[owner]);
  }
}

}  // namespace

void launchGatherOwnedRows(cudaStream_t s, const float* local, float* out, long long rows, int dim, long long rowBase, int size, const long long* offsets) {
  if (rows == 0) return;
  gatherOwnedRows<<<blocksFor(rows * dim, 256, 4096), 256, 0, s>>>(local, out, rows, dim, rowBase, size, offsets);
  checkLaunch("gather a table's rows from their owners kernel");
}

void launchListFlagged(cudaStream_t s, const FlagRange* ranges, int rangeCount, long long mostRows) {
  if (rangeCount == 0) return;
  const int blocks = blocksFor(std::max<long long>(mostRows, 1), 256, 1024);
  listFlagged<<<dim3(blocks, rangeCount), 256, 0, s>>>(ranges);
  checkLaunch("list flagged rows kernel");
}

void launchListAnyRank(cudaStream_t s, const PeerRows& peers, const RowRange* ranges, int rangeCount, long long mostRows, int* list, int* count) {
  if (rangeCount == 0) return;
  listAnyRank<<<dim3(blocksFor(std::max<long long>(mostRows, 1), 256, 1024), rangeCount), 256, 0, s>>>(peers, ranges, list, count);
  checkLaunch("list every rank's flagged rows kernel");
}

void launchPushRows(cudaStream_t s, const PeerRows& peers, int tableCount, long long mostRows, float* keyGrad, unsigned char* touched) {
  if (tableCount == 0 || peers.inboxAt < 0) return;
  pushRows<<<dim3(blocksFor(std::max<long long>(mostRows, 1), 256, 1024), tableCount), 256, 0, s>>>(peers, keyGrad, touched);
  checkLaunch("push rows to their owners kernel");
}

void launchListOwned(cudaStream_t s, const PeerRows& peers, int tableCount, long long mostRows, int* list, int* count) {
  if (tableCount == 0 || peers.inboxAt < 0) return;
  const long long owned = (std::max<long long>(mostRows, 1) + peers.size - 1) / peers.size + 1;
  listOwned<<<dim3(blocksFor(owned, 256, 1024), tableCount), 256, 0, s>>>(peers, list, count);
  checkLaunch("list this rank's flagged rows kernel");
}

bool recordVectorised(const float* grad, int dim) { return dim % 4 == 0 && reinterpret_cast<uintptr_t>(grad) % 16 == 0; }

void launchPackRows(cudaStream_t s, const int* rows, const int* count, int capacity, float* grad, int dim, int* record, PackMode mode, bool bf16) {
  if (recordVectorised(grad, dim)) {
    const int blocks = blocksFor((long long)capacity * dim / 4, 256, 8192);
    if (bf16)
      packRows4<Bf16x4><<<blocks, 256, 0, s>>>(rows, count, capacity, grad, dim, record, mode);
    else
      packRows4<float4><<<blocks, 256, 0, s>>>(rows, count, capacity, grad, dim, record, mode);
  } else {
    if (bf16) throw Error("bfloat16 row records need rows of whole float4s");
    packRows1<<<blocksFor((long long)capacity * dim, 256, 8192), 256, 0, s>>>(rows, count, capacity, grad, dim, record, mode);
  }
  checkLaunch("pack touched rows kernel");
}

void launchUnpackRecords(cudaStream_t s, const int* records, long long words, int size, int capacity, float* grad, int dim, unsigned char* touched, int skipRank,
                         bool bf16) {
  for (int rank = 0; rank < size; rank++) {
    if (rank == skipRank) continue;
    const int* record = records + rank * words;
    if (recordVectorised(grad, dim)) {
      const int blocks = blocksFor((long long)capacity * dim / 4, 256, 8192);
      if (bf16)
        unpackRecord4<Bf16x4><<<blocks, 256, 0, s>>>(record, capacity, grad, dim, touched);
      else
        unpackRecord4<float4><<<blocks, 256, 0, s>>>(record, capacity, grad, dim, touched);
    } else {
      if (bf16) throw Error("bfloat16 row records need rows of whole float4s");
      unpackRecord1<<<blocksFor((long long)capacity * dim, 256, 8192), 256, 0, s>>>(record, capacity, grad, dim, touched);
    }
    checkLaunch("unpack touched rows kernel");
  }
}

}  // namespace wndc
