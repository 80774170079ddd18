// Table lookups (forward) and their gradients (backward), with TF's safe_embedding_lookup_sparse
// semantics (docs/engine.md "Lookups"): a row's valid ids are the first `length` slots of its bag;
// ids whose weight is not positive are dropped; sum / mean / sqrtn combiners; no id gives zeros.
// Gradients are accumulated with atomics into one float buffer laid out like the tables
// (keyGrad), and each touched row is flagged; the optimizer then visits the flagged rows only.
#include "kernels.cuh"

namespace wndc {

namespace {

__device__ __forceinline__ long long sourceRow(const BatchView& b, int row) { return b.rowIndex ? b.rowIndex[row] : row; }

__device__ __forceinline__ int bagCount(const BatchView& b, long long r, int width, int lengthSlot) {
  if (lengthSlot < 0) return width;
  int n = b.lengths[r * b.lengthsWidth + lengthSlot];
  return n < 0 ? 0 : (n > width ? width : n);
}

__device__ __forceinline__ float slotWeight(const BatchView& b, long long r, int weightOffset, int j) {
  return weightOffset < 0 ? 1.0f : b.weights[r * b.weightsWidth + weightOffset + j];
}

__device__ void reportBad(BadId* bad, int row, int list, int index, long long id) {
  if (atomicCAS(&bad->flag, 0, 1) == 0) {
    bad->row = row;
    bad->list = list;
    bad->index = index;
    bad->id = id;
  }
}

/** The factor that turns a slot's weight into its coefficient: 1/sum(w), 1/sqrt(sum(w^2)) or 1. */
__device__ float combinerScale(const BatchView& b, long long r, const DevLookup& L, int count) {
  if (L.combiner == 0) return 1.0f;
  float norm = 0.0f;
  for (int j = 0; j < count; j++) {
    float w = slotWeight(b, r, L.weightOffset, j);
    if (!(w > 0.0f)) continue;
    norm += L.combiner == 1 ? w : w * w;
  }
  if (!(norm > 0.0f)) return 0.0f;
  return L.combiner == 1 ? 1.0f / norm : 1.0f / sqrtf(norm);
}

/** The id at slot j when it is read (valid, positive weight, in range), else -1; reports bad ids. */
__device__ __forceinline__ long long readId(const BatchView& b, long long r, const DevLookup& L, int j, int row, int list, BadId* bad,
                                            float* weight) {
  float w = slotWeight(b, r, L.weightOffset, j);
  if (!(w > 0.0f)) return -1;
  long long id = b.ids[r * b.idsWidth + L.idOffset + j];
  if (id < 0 || id >= L.rows) {
    if (bad) reportBad(bad, row, list, L.index, id);
    return -1;
  }
  *weight = w;
  return id;
}

__global__ void wideForward(BatchView b, const DevLookup* lookups, int count, const float* bias, const float* numericWeights,
                            const int* numericColumns, int numericCount, float* wideLogit, BadId* bad) {
  for (int row = blockIdx.x * blockDim.x + threadIdx.x; row < b.size; row += gridDim.x * blockDim.x) {
    long long r = sourceRow(b, row);
    float sum = bias ? bias[0] : 0.0f;
    for (int l = 0; l < count; l++) {
      const DevLookup L = lookups[l];
      int n = bagCount(b, r, L.width, L.lengthSlot);
      float scale = combinerScale(b, r, L, n);
      for (int j = 0; j < n; j++) {
        float w;
        long long id = readId(b, r, L, j, row, 0, bad, &w);
        if (id < 0) continue;
        sum += L.table[id] * (w * scale);
      }
    }
    for (int k = 0; k < numericCount; k++) sum += numericWeights[k] * b.numeric[r * b.numericWidth + numericColumns[k]];
    wideLogit[row] = sum;
  }
}

/** The combiner's factor for a bag, its weights summed across the warp (lanes over slots). */
__device__ __forceinline__ float warpCombinerScale(const BatchView& b, long long r, const DevLookup& L, int n, int lane) {
  if (L.combiner == 0) return 1.0f;
  float norm = 0.0f;
  for (int j = lane; j < n; j += 32) {
    const float w = slotWeight(b, r, L.weightOffset, j);
    if (w > 0.0f) norm += L.combiner == 1 ? w : w * w;
  }
  for (int offset = 16; offset > 0; offset >>= 1) norm += __shfl_xor_sync(0xffffffffu, norm, offset);
  if (!(norm > 0.0f)) return 0.0f;
  return L.combiner == 1 ? 1.0f / norm : 1.0f / sqrtf(norm);
}

/** Ids per batch row the row-wise lookup kernels keep in registers (4 per lane). */
constexpr int kRowIdsMax = 128;
/** Lookups the row-wise kernels keep in shared memory. */
constexpr int kRowLookupsMax = 96;

/**
 * Copies the lookups' descriptors into the block's `shared` array when they fit (nearly every
 * model) and says whether they did; else the caller reads them where they are. Every thread of
 * the block calls it (it synchronises the block).
 */
__device__ inline bool stageLookups(DevLookup* shared, const DevLookup* lookups, int count) {
  const bool fits = count <= kRowLookupsMax;
  if (fits)
    for (int i = threadIdx.x; i < count; i += blockDim.x) shared[i] = lookups[i];
  __syncthreads();
  return fits;
}

/** The row's ids, 4 per lane: lane l holds ids l, l + 32, l + 64, l + 96. */
struct RowIds {
  int v[4];
  __device__ __forceinline__ int at(int column) const {
    const int reg = column >> 5;
    const int value = reg == 0 ? v[0] : reg == 1 ? v[1] : reg == 2 ? v[2] : v[3];
    return __shfl_sync(0xffffffffu, value, column & 31);
  }
};

__device__ __forceinline__ RowIds loadRowIds(const BatchView& b, long long r, int lane) {
  RowIds ids;
#pragma unroll
  for (int k = 0; k < 4; k++) {
    const int column = lane + 32 * k;
    ids.v[k] = column < b.idsWidth ? b.ids[r * b.idsWidth + column] : -1;
  }
  return ids;
}

/**
 * Slot `j` of lookup L in this row, from the ids in registers (or memory, past the first
 * kRowIdsMax): the id when it is read (valid, positive weight, in range; bad ids reported), else
 * -1. Every lane gets the same answer; every lane must call it (it shuffles).
 */
__device__ __forceinline__ long long rowSlotId(const BatchView& b, long long r, const RowIds& ids, const DevLookup& L, int j, int row, BadId* bad,
                                              float* weight) {
  const int column = L.idOffset + j;
  const long long id = column < kRowIdsMax ? ids.at(column) : b.ids[r * b.idsWidth + column];
  const float w = slotWeight(b, r, L.weightOffset, j);
  if (!(w > 0.0f)) return -1;
  if (id < 0 || id >= L.rows) {
    if (bad) reportBad(bad, row, 1, L.index, id);
    return -1;
  }
  *weight = w;
  return id;
}

/**
 * One warp per batch row, every embedding lookup of the row in turn: the row's ids are read once
 * (coalesced) and the lookups' descriptors sit in shared memory, so each table row is the only
 * dependent load. Lanes cover 4 adjacent floats of a vector (128 per pass).
 */
template <typename T>
__global__ void embeddingForwardRows(BatchView b, const DevLookup* lookups, int count, T* x0, int inputWidth, BadId* bad) {
  __shared__ DevLookup shared[kRowLookupsMax];
  const bool inShared = stageLookups(shared, lookups, count);
  const int lane = threadIdx.x & 31;
  const int warps = gridDim.x * (blockDim.x >> 5);
  for (int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < b.size; row += warps) {
    const long long r = sourceRow(b, row);
    const RowIds ids = loadRowIds(b, r, lane);
    T* outRow = x0 + (long long)row * inputWidth;
    for (int l = 0; l < count; l++) {
      const DevLookup& L = inShared ? shared[l] : lookups[l];
      const int n = bagCount(b, r, L.width, L.lengthSlot);
      const float scale = warpCombinerScale(b, r, L, n, lane);
      const bool vector = L.dim % 4 == 0;
      const int step = vector ? 128 : 32;
      for (int d0 = 0; d0 < L.dim; d0 += step) {
        const int d = d0 + (vector ? 4 * lane : lane);
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll 4
        for (int j = 0; j < n; j++) {
          float w;
          const long long id = rowSlotId(b, r, ids, L, j, row, d0 == 0 && lane == 0 ? bad : nullptr, &w);
          if (id < 0 || d >= L.dim) continue;
          const float c = w * scale;
          const float* src = L.table + id * L.dim + d;
          if (vector) {
            const float4 v = *reinterpret_cast<const float4*>(src);
            acc[0] += v.x * c;
            acc[1] += v.y * c;
            acc[2] += v.z * c;
            acc[3] += v.w * c;
          } else {
            acc[0] += src[0] * c;
          }
        }
        if (d >= L.dim) continue;
        T* out = outRow + L.outOffset;
        out[d] = fromFloat<T>(acc[0]);
        if (vector) {
          out[d + 1] = fromFloat<T>(acc[1]);
          out[d + 2] = fromFloat<T>(acc[2]);
          out[d + 3] = fromFloat<T>(acc[3]);
        }
      }
    }
  }
}

/** The backward of embeddingForwardRows: one warp per row; each lookup's gradient read once, added to its ids' rows. */
template <typename T>
__global__ void embeddingBackwardRows(BatchView b, const DevLookup* lookups, int count, const T* dx0, int inputWidth, float* keyGrad,
                                      unsigned char* touched) {
  __shared__ DevLookup shared[kRowLookupsMax];
  const bool inShared = stageLookups(shared, lookups, count);
  const int lane = threadIdx.x & 31;
  const int warps = gridDim.x * (blockDim.x >> 5);
  for (int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < b.size; row += warps) {
    const long long r = sourceRow(b, row);
    const RowIds ids = loadRowIds(b, r, lane);
    const T* gRow = dx0 + (long long)row * inputWidth;
    for (int l = 0; l < count; l++) {
      const DevLookup& L = inShared ? shared[l] : lookups[l];
      const int n = bagCount(b, r, L.width, L.lengthSlot);
      const float scale = warpCombinerScale(b, r, L, n, lane);
      float* table = keyGrad + L.gradBase;
#if __CUDA_ARCH__ >= 900
      const bool vector = L.dim % 4 == 0;
#else
      const bool vector = false;
#endif
      const int step = vector ? 128 : 32;
      for (int d0 = 0; d0 < L.dim; d0 += step) {
        const int d = d0 + (vector ? 4 * lane : lane);
        float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        const T* g = gRow + L.outOffset;
        if (d < L.dim) {
          v[0] = toFloat<T>(g[d]);
          if (vector) {
            v[1] = toFloat<T>(g[d + 1]);
            v[2] = toFloat<T>(g[d + 2]);
            v[3] = toFloat<T>(g[d + 3]);
          }
        }
        for (int j = 0; j < n; j++) {
          float w;
          const long long id = rowSlotId(b, r, ids, L, j, row, nullptr, &w);
          if (id < 0) continue;
          if (d0 == 0 && lane == 0) touched[L.rowBase + id] = 1;
          if (d >= L.dim) continue;
          const float c = w * scale;
          float* dst = table + id * L.dim + d;
#if __CUDA_ARCH__ >= 900
          if (vector) {
            atomicAdd(reinterpret_cast<float4*>(dst), make_float4(v[0] * c, v[1] * c, v[2] * c, v[3] * c));
            continue;
          }
#endif
          atomicAdd(dst, v[0] * c);
        }
      }
    }
  }
}

template <typename T>
__global__ void denseInputs(BatchView b, const DevDenseJob* jobs, int count, T* x0, int inputWidth, BadId* bad) {
  for (long long item = (long long)blockIdx.x * blockDim.x + threadIdx.x; item < (long long)b.size * count;
       item += (long long)gridDim.x * blockDim.x) {
    const int row = static_cast<int>(item / count);
    const DevDenseJob J = jobs[item % count];
    const long long r = sourceRow(b, row);
    T* out = x0 + (long long)row * inputWidth + J.outOffset;
    if (J.kind == 0) {
      out[0] = fromFloat<T>(b.numeric[r * b.numericWidth + J.source]);
      continue;
    }
    // Indicator: counts (or summed weights) per bucket; nothing is dropped (TF's indicator_column).
    for (int k = 0; k < J.buckets; k++) out[k] = fromFloat<T>(0.0f);
    const int n = bagCount(b, r, J.width, J.lengthSlot);
    for (int j = 0; j < n; j++) {
      long long id = b.ids[r * b.idsWidth + J.idOffset + j];
      if (id < 0 || id >= J.buckets) {
        reportBad(bad, row, 2, static_cast<int>(item % count), id);
        continue;
      }
      float w = slotWeight(b, r, J.weightOffset, j);
      out[id] = fromFloat<T>(toFloat<T>(out[id]) + w);
    }
  }
}

/**
 * One thread per (lookup, row), rows adjacent within a warp. Small tables (an hour, a platform)
 * are read by most rows of a batch, so the lanes that add to the same weight first sum among
 * themselves (__match_any_sync) and one of them adds the total: far fewer atomics on hot rows.
 */
__global__ void wideBackward(BatchView b, const DevLookup* lookups, int count, const float* dz, float* keyGrad, unsigned char* touched) {
  __shared__ float values[8][32];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const long long total = (long long)b.size * count;
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long base = (long long)blockIdx.x * blockDim.x + warp * 32; base < total; base += stride) {
    const long long item = base + lane;
    const bool inside = item < total;
    const int l = inside ? static_cast<int>(item / b.size) : 0;
    const int row = inside ? static_cast<int>(item % b.size) : 0;
    const DevLookup& L = lookups[l];
    const long long r = sourceRow(b, row);
    const int n = inside ? bagCount(b, r, L.width, L.lengthSlot) : 0;
    const float scale = inside ? combinerScale(b, r, L, n) : 0.0f;
    const float g = inside ? dz[row] : 0.0f;
    const int rounds = __reduce_max_sync(0xffffffffu, static_cast<unsigned>(n));
    for (int j = 0; j < rounds; j++) {
      float w = 0.0f;
      const long long id = j < n ? readId(b, r, L, j, row, 0, nullptr, &w) : -1;
      const bool valid = id >= 0;
      const unsigned active = __ballot_sync(0xffffffffu, valid);
      if (valid) {
        const long long address = L.gradBase + id;
        const unsigned peers = __match_any_sync(active, address);
        values[warp][lane] = g * (w * scale);
        __syncwarp(active);
        if (lane == __ffs(peers) - 1) {
          float sum = 0.0f;
          for (unsigned m = peers; m; m &= m - 1) sum += values[warp][__ffs(m) - 1];
          atomicAdd(&keyGrad[address], sum);
          touched[L.rowBase + id] = 1;
        }
      }
      __syncwarp();
    }
  }
}

}  // namespace

void launchWideForward(cudaStream_t s, const BatchView& b, const DevLookup* lookups, int count, const float* bias, const float* numericWeights,
                       const int* numericColumns, int numericCount, float* wideLogit, BadId* bad) {
  if (b.size == 0) return;
  wideForward<<<blocksFor(b.size, 256), 256, 0, s>>>(b, lookups, count, bias, numericWeights, numericColumns, numericCount, wideLogit, bad);
  checkLaunch("wide forward kernel");
}

template <typename T>
void launchEmbeddingForward(cudaStream_t s, const BatchView& b, const DevLookup* lookups, int count, T* x0, int inputWidth, BadId* bad) {
  if (b.size == 0 || count == 0) return;
  embeddingForwardRows<T><<<blocksFor((long long)b.size * 32, 256), 256, 0, s>>>(b, lookups, count, x0, inputWidth, bad);
  checkLaunch("embedding lookup kernel");
}

template <typename T>
void launchDenseInputs(cudaStream_t s, const BatchView& b, const DevDenseJob* jobs, int count, T* x0, int inputWidth, BadId* bad) {
  if (b.size == 0 || count == 0) return;
  denseInputs<T><<<blocksFor((long long)b.size * count, 256), 256, 0, s>>>(b, jobs, count, x0, inputWidth, bad);
  checkLaunch("indicator and numeric input kernel");
}

void launchWideBackward(cudaStream_t s, const BatchView& b, const DevLookup* lookups, int count, const float* dz, float* keyGrad,
                        unsigned char* touched) {
  if (b.size == 0 || count == 0) return;
  wideBackward<<<blocksFor((long long)b.size * count, 256), 256, 0, s>>>(b, lookups, count, dz, keyGrad, touched);
  checkLaunch("wide gradient kernel");
}

template <typename T>
void launchEmbeddingBackward(cudaStream_t s, const BatchView& b, const DevLookup* lookups, int count, const T* dx0, int inputWidth,
                             float* keyGrad, unsigned char* touched) {
  if (b.size == 0 || count == 0) return;
  embeddingBackwardRows<T><<<blocksFor((long long)b.size * 32, 256), 256, 0, s>>>(b, lookups, count, dx0, inputWidth, keyGrad, touched);
  checkLaunch("embedding gradient kernel");
}

#define WNDC_INSTANTIATE(T)                                                                                                        \
  template void launchEmbeddingForward<T>(cudaStream_t, const BatchView&, const DevLookup*, int, T*, int, BadId*);             \
  template void launchDenseInputs<T>(cudaStream_t, const BatchView&, const DevDenseJob*, int, T*, int, BadId*);                \
  template void launchEmbeddingBackward<T>(cudaStream_t, const BatchView&, const DevLookup*, int, const T*, int, float*, unsigned char*);
WNDC_INSTANTIATE(float)
WNDC_INSTANTIATE(__nv_bfloat16)
WNDC_INSTANTIATE(__half)
#undef WNDC_INSTANTIATE

}  // namespace wndc
