// The tower's element-wise work, the head (logit and loss), batch norm, column reductions, the
// optimizers' kernels, casts and the fp16 loss-scale bookkeeping. Reductions run in two stages
// (per chunk of rows, then over chunks in order), so every sum is deterministic.
#include "optim.cuh"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <type_traits>

#include <thrust/iterator/counting_iterator.h>
#include <cub/device/device_select.cuh>

namespace wndc {

namespace {

constexpr int kColumnThreadsY = 8;

__device__ __forceinline__ float activate(Activation a, float x) {
  switch (a) {
    case Activation::Relu: return x > 0.0f ? x : 0.0f;
    case Activation::Tanh: return tanhf(x);
    case Activation::Sigmoid: return 1.0f / (1.0f + expf(-x));
    case Activation::Gelu: return (x * 0.5f) * (erff(x * 0.70710678118654752f) + 1.0f);
    default: return x;
  }
}

/** d act / dx at pre-activation x. */
__device__ __forceinline__ float activationSlope(Activation a, float x) {
  switch (a) {
    case Activation::Relu: return x > 0.0f ? 1.0f : 0.0f;
    case Activation::Tanh: {
      const float t = tanhf(x);
      return 1.0f - t * t;
    }
    case Activation::Sigmoid: {
      const float s = 1.0f / (1.0f + expf(-x));
      return s * (1.0f - s);
    }
    case Activation::Gelu: {
      const float u = x * 0.70710678118654752f;
      return 0.5f * (erff(u) + 1.0f) + (x * 0.5f) * (1.12837916709551257f * expf(-u * u)) * 0.70710678118654752f;
    }
    default: return 1.0f;
  }
}

/** Counter-based dropout draw: a uniform in [0, 1) from (seed, step, layer, index). */
__device__ __forceinline__ float dropoutUniform(unsigned long long seed, long long step, int layer, long long index) {
  unsigned long long x = seed ^ (0x9E3779B97F4A7C15ULL * (unsigned long long)(step + 1)) ^ (0xD1B54A32D192ED03ULL * (unsigned long long)(layer + 1));
  x += 0x9E3779B97F4A7C15ULL * (unsigned long long)(index + 1);
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return (float)(x >> 40) * (1.0f / 16777216.0f);
}

__device__ __forceinline__ float dropoutFactor(const HiddenLayerArgs& a, long long i) {
  if (a.mask) return a.mask[i];
  if (a.dropout <= 0.0f) return 1.0f;
  return dropoutUniform(a.seed, a.step, a.layer, i + a.rowOffset * a.units) >= a.dropout ? 1.0f / (1.0f - a.dropout) : 0.0f;
}

/** Rows per chunk of a column reduction: at most 128 chunks, a multiple of 8 rows. */
__host__ __device__ __forceinline__ int chunkRows(int rows) {
  int r = (rows + 127) / 128;
  r = (r + 7) / 8 * 8;
  return r < 64 ? 64 : r;
}

/** Columns a block of a column reduction covers: 32 lanes x 4 columns each. */
constexpr int kColumnsPerBlock = 128;

/**
 * partial[chunk * cols + j] = sum over the chunk's rows b of f(b, j). Each thread takes 4 columns
 * 32 apart, so a warp touches 128 adjacent columns of a row at once (more bytes in flight).
 */
template <typename F>
__global__ void columnPartial(int rows, int cols, F f, float* partial) {
  __shared__ float sums[kColumnThreadsY][kColumnsPerBlock + 1];
  const int j0 = blockIdx.x * kColumnsPerBlock + threadIdx.x;
  const int per = chunkRows(rows);
  const int start = blockIdx.y * per;
  const int end = min(rows, start + per);
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int b = start + threadIdx.y; b < end; b += kColumnThreadsY) {
#pragma unroll
    for (int c = 0; c < 4; c++)
      if (j0 + 32 * c < cols) acc[c] += f(b, j0 + 32 * c);
  }
#pragma unroll
  for (int c = 0; c < 4; c++) sums[threadIdx.y][threadIdx.x + 32 * c] = acc[c];
  __syncthreads();
  if (threadIdx.y == 0) {
#pragma unroll
    for (int c = 0; c < 4; c++) {
      const int j = j0 + 32 * c;
      if (j >= cols) continue;
      float total = 0.0f;
      for (int y = 0; y < kColumnThreadsY; y++) total += sums[y][threadIdx.x + 32 * c];
      partial[(long long)blockIdx.y * cols + j] = total;
    }
  }
}

template <typename F>
void columnReduce(cudaStream_t s, int rows, int cols, F f, float* partial, const char* what) {
  if (rows == 0 || cols == 0) return;
  dim3 block(32, kColumnThreadsY);
  dim3 grid((cols + kColumnsPerBlock - 1) / kColumnsPerBlock, (rows + chunkRows(rows) - 1) / chunkRows(rows));
  columnPartial<F><<<grid, block, 0, s>>>(rows, cols, f, partial);
  checkLaunch(what);
}

__global__ void finishColumns(const float* partial, int chunks, int cols, float* out, float scale, bool accumulate) {
  for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < cols; j += gridDim.x * blockDim.x) {
    float total = 0.0f;
    for (int c = 0; c < chunks; c++) total += partial[(long long)c * cols + j];
    out[j] = accumulate ? out[j] + total * scale : total * scale;
  }
}

__global__ void sumAll(const float* v, int n, float* out, float scale) {
  __shared__ float sums[1024];
  float acc = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) acc += v[i];
  sums[threadIdx.x] = acc;
  __syncthreads();
  for (int width = blockDim.x / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) sums[threadIdx.x] += sums[threadIdx.x + width];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[0] = sums[0] * scale;
}

template <typename T>
struct WeightedColumn {
  const T* x;
  int cols;
  const float* w;
  __device__ float operator()(int b, int j) const { return toFloat<T>(x[(long long)b * cols + j]) * (w ? w[b] : 1.0f); }
};

struct WideNumericColumn {
  BatchView batch;
  const int* columns;
  const float* dz;
  __device__ float operator()(int b, int k) const {
    const long long r = batch.rowIndex ? batch.rowIndex[b] : b;
    return batch.numeric[r * batch.numericWidth + columns[k]] * dz[b];
  }
};

template <typename T>
__global__ void logitLoss(BatchView b, const T* input, int width, const float* kernel, const float* bias, const float* wideLogit, bool training,
                          bool weighted, const float* lossScale, float* z, float* rowLoss, float* dz, float divisor) {
  const int lane = threadIdx.x & 31;
  const long long warps = (long long)gridDim.x * (blockDim.x >> 5);
  for (long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < b.size; row += warps) {
    float dot = 0.0f;
    if (input)
      for (int j = lane; j < width; j += 32) dot += toFloat<T>(input[row * width + j]) * kernel[j];
    for (int offset = 16; offset > 0; offset >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
    if (lane != 0) continue;
    float logit = input ? dot + bias[0] : 0.0f;
    if (wideLogit) logit = input ? wideLogit[row] + logit : wideLogit[row];
    z[row] = logit;
    if (!training) continue;
    const long long r = b.rowIndex ? b.rowIndex[row] : row;
    const float y = b.label[r];
    const float w = weighted ? b.weight[r] : 1.0f;
    const float e = expf(-fabsf(logit));
    rowLoss[row] = w * ((fmaxf(logit, 0.0f) - logit * y) + log1pf(e));
    // The derivative of that expression as TF and tfjs autodiff take it (relu' and |.|' are 0 at 0).
    const float sign = logit > 0.0f ? 1.0f : (logit < 0.0f ? -1.0f : 0.0f);
    const float slope = ((logit > 0.0f ? 1.0f : 0.0f) - y) - sign * (e / (1.0f + e));
    dz[row] = (w * slope / divisor) * (lossScale ? *lossScale : 1.0f);
  }
}

__global__ void sigmoidKernel(const float* z, float* p, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) p[i] = 1.0f / (1.0f + expf(-z[i]));
}

template <typename T>
__global__ void activationForward(HiddenLayerArgs a, const T* pre, T* out, bool training) {
  const long long n = (long long)a.rows * a.units;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    float y = activate(a.activation, toFloat<T>(pre[i]));
    if (training) y = y * dropoutFactor(a, i);
    out[i] = fromFloat<T>(y);
  }
}

template <typename T>
struct ActivationBackward {
  HiddenLayerArgs a;
  const T* dOut;
  const float* dz;
  const float* logitKernel;
  const T* pre;
  const T* out;
  T* dPre;
  __device__ float operator()(int b, int j) const {
    const long long i = (long long)b * a.units + j;
    const float upstream = logitKernel ? dz[b] * logitKernel[j] : toFloat<T>(dOut[i]);
    float g;
    if (pre) g = (upstream * dropoutFactor(a, i)) * activationSlope(a.activation, toFloat<T>(pre[i]));
    else g = toFloat<T>(out[i]) > 0.0f ? upstream : 0.0f;
    dPre[i] = fromFloat<T>(g);
    return g;
  }
};

/** Rows per chunk of the vectorised activation gradient: at most 256 chunks, a multiple of 8 rows. */
__host__ __device__ __forceinline__ int vectorChunkRows(int rows) {
  int r = (rows + 255) / 256;
  r = (r + 7) / 8 * 8;
  return r < 64 ? 64 : r;
}

/** V activations of type T in one 16-byte access. */
template <typename T, int V>
struct alignas(16) Pack {
  T v[V];
};

/**
 * ActivationBackward for units divisible by V = 16 / sizeof(T): each thread reads and writes V
 * adjacent units with 16-byte accesses (a warp covers 512 contiguous bytes of a row) and sums
 * their bias gradient over its chunk of rows.
 */
template <typename T, int V>
__global__ void activationBackwardVector(HiddenLayerArgs a, const T* dOut, const float* dz, const float* logitKernel, const T* pre, const T* out, T* dPre,
                                         float* partial) {
  __shared__ float sums[kColumnThreadsY][32 * V];
  const int j0 = (blockIdx.x * 32 + threadIdx.x) * V;
  const int per = vectorChunkRows(a.rows);
  const int start = blockIdx.y * per;
  const int end = min(a.rows, start + per);
  float acc[V];
#pragma unroll
  for (int k = 0; k < V; k++) acc[k] = 0.0f;
  if (j0 < a.units) {
    for (int b = start + threadIdx.y; b < end; b += kColumnThreadsY) {
      const long long i = (long long)b * a.units + j0;
      Pack<T, V> upstream, held, result;
      if (!logitKernel) upstream = *reinterpret_cast<const Pack<T, V>*>(dOut + i);
      held = *reinterpret_cast<const Pack<T, V>*>((pre ? pre : out) + i);
#pragma unroll
      for (int k = 0; k < V; k++) {
        const float up = logitKernel ? dz[b] * logitKernel[j0 + k] : toFloat<T>(upstream.v[k]);
        float g;
        if (pre) g = (up * dropoutFactor(a, i + k)) * activationSlope(a.activation, toFloat<T>(held.v[k]));
        else g = toFloat<T>(held.v[k]) > 0.0f ? up : 0.0f;
        result.v[k] = fromFloat<T>(g);
        acc[k] += g;
      }
      *reinterpret_cast<Pack<T, V>*>(dPre + i) = result;
    }
  }
#pragma unroll
  for (int k = 0; k < V; k++) sums[threadIdx.y][threadIdx.x * V + k] = acc[k];
  __syncthreads();
  if (threadIdx.y == 0 && j0 < a.units) {
#pragma unroll
    for (int k = 0; k < V; k++) {
      float total = 0.0f;
      for (int y = 0; y < kColumnThreadsY; y++) total += sums[y][threadIdx.x * V + k];
      partial[(long long)blockIdx.y * a.units + j0 + k] = total;
    }
  }
}

template <typename T>
__global__ void outerProduct(const float* dz, const float* kernel, int rows, int units, T* out) {
  const long long n = (long long)rows * units;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    out[i] = fromFloat<T>(dz[i / units] * kernel[i % units]);
}

template <typename T>
struct ColumnValue {
  const T* y;
  int cols;
  __device__ float operator()(int b, int j) const { return toFloat<T>(y[(long long)b * cols + j]); }
};

template <typename T>
struct SquaredDeviation {
  const T* y;
  int cols;
  const float* mean;
  __device__ float operator()(int b, int j) const {
    const float d = toFloat<T>(y[(long long)b * cols + j]) - mean[j];
    return d * d;
  }
};

template <typename T>
struct NormalisedTimesGrad {
  const T* y;
  const T* dOut;
  int cols;
  const float* mean;
  const float* variance;
  float epsilon;
  __device__ float operator()(int b, int j) const {
    const long long i = (long long)b * cols + j;
    const float normalised = (toFloat<T>(y[i]) - mean[j]) * (1.0f / sqrtf(variance[j] + epsilon));
    return toFloat<T>(dOut[i]) * normalised;
  }
};

template <typename T>
__global__ void batchNormForward(const T* y, int rows, int units, const float* gamma, const float* beta, const float* mean, const float* variance,
                                 float epsilon, T* out) {
  const long long n = (long long)rows * units;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const int j = static_cast<int>(i % units);
    const float normalised = (toFloat<T>(y[i]) - mean[j]) * (1.0f / sqrtf(variance[j] + epsilon));
    out[i] = fromFloat<T>(normalised * gamma[j] + beta[j]);
  }
}

/** dY = gamma * inv / n * (n dZ - sum dZ - yhat * sum(dZ yhat)), in place of dZ. */
template <typename T>
__global__ void batchNormBackward(const T* y, T* dOut, int rows, int units, const float* gamma, const float* mean, const float* variance,
                                  float epsilon, const float* dgamma, const float* dbeta) {
  const long long n = (long long)rows * units;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const int j = static_cast<int>(i % units);
    const float inv = 1.0f / sqrtf(variance[j] + epsilon);
    const float normalised = (toFloat<T>(y[i]) - mean[j]) * inv;
    const float g = toFloat<T>(dOut[i]);
    dOut[i] = fromFloat<T>(gamma[j] * inv * (g - dbeta[j] / rows - normalised * (dgamma[j] / rows)));
  }
}

__global__ void movingAverage(float* average, const float* value, int n, float rate, const int* skip) {
  if (skip && *skip) return;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) average[i] = average[i] - (average[i] - value[i]) * rate;
}

__global__ void denseApply(OptimizerArgs o, float* param, const float* grad, float* slot0, float* slot1, long long n, const float* lossScale,
                           const int* skip) {
  if (skip && *skip) return;
  const float unscale = lossScale ? 1.0f / *lossScale : 1.0f;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    float w = param[i];
    optimizerUpdate(o, w, slot0 ? slot0 + i : nullptr, slot1 ? slot1 + i : nullptr, grad[i] * unscale);
    param[i] = w;
  }
}

__device__ __forceinline__ int tableOf(long long row, const long long* base, int count) {
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (base[mid] <= row) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * The gradients of the ranks in `ranks` (bit r: rank r flagged the row; the others hold zeros
 * there), at `offset` floats into their accumulators or `inboxOffset` into this rank's inbox
 * (rankGradient), summed in rank order: the same bits on every rank. The loads are issued together.
 */
template <typename V>
__device__ __forceinline__ V sumOverRanks(const PeerRows& peers, unsigned ranks, long long offset, long long inboxOffset) {
  // Two float4s, or four floats, a lane at a time: the tables' optimizer then takes 113 registers
  // (nvcc 13, sm_90), two blocks an SM; eight took one block an SM (135 registers in the device's
  // build, ncu), and on two H100s its pass 0.27 ms against 0.21.
  constexpr int kBatch = std::is_same<V, float4>::value ? 2 : 4;
  V sum{};
  bool any = false;
  while (ranks != 0u) {
    V v[kBatch];
    int n = 0;
#pragma unroll
    for (int k = 0; k < kBatch; k++) {
      if (ranks == 0u) break;
      v[k] = *reinterpret_cast<const V*>(rankGradient(peers, __ffs(ranks) - 1, offset, inboxOffset));
      ranks &= ranks - 1u;
      n = k + 1;
    }
#pragma unroll
    for (int k = 0; k < kBatch; k++) {
      if (k >= n) break;
      if constexpr (std::is_same<V, float4>::value) sum = any ? make_float4(sum.x + v[k].x, sum.y + v[k].y, sum.z + v[k].z, sum.w + v[k].w) : v[k];
      else sum = any ? sum + v[k] : v[k];
      any = true;
    }
  }
  return sum;
}

/** The listed rows' tables, as the sparse optimizer reads them. */
struct SparseTables {
  const long long* rowBase;
  const long long* gradBase;
  const int* dim;
  const int* part;
  float* const* values;
  float* const* slot0;
  float* const* slot1;
  int count;
};

/**
 * One listed row (list entry i, table t) by `lanes` lanes starting at `lane` (a whole warp for wide
 * rows, one thread for narrow ones): its gradient (this rank's, or with `peers` the flagging ranks'
 * sum) applied, then, unless other ranks may still read it, cleared with its flag.
 */
__device__ __forceinline__ void applyRow(const OptimizerPair& opt, const SparseTables& tab, long long i, long long row, int t, int lane, int lanes, float* keyGrad,
                                         unsigned char* touched, float unscale, bool update, bool vectorRows, const PeerRows& peers) {
  const long long local = row - tab.rowBase[t];
  const int dim = tab.dim[t];
  const long long offset = tab.gradBase[t] + local * dim;
  float* g = keyGrad + offset;
  float* w = tab.values[t] + local * dim;
  float* s0 = tab.slot0[t] ? tab.slot0[t] + local * dim : nullptr;
  float* s1 = tab.slot1[t] ? tab.slot1[t] + local * dim : nullptr;
  // Tables read from every rank: the gradient is the ranks' sum, and this rank's row and flag stay
  // until no rank reads them (launchClearPeerRows). With the rows split between the ranks
  // (peers.owner), this rank owns the row: it writes the new weights into every rank's tables
  // (its slots stay here) and clears the row and flag of every rank that flagged it (with pushed
  // rows, peers.inboxAt: its own and its inbox's copies; rankGradient and rankFlag say where).
  const bool fromRanks = peers.size > 0;
  const bool owned = fromRanks && peers.owner >= 0;
  const unsigned ranks = fromRanks ? peers.listRanks[i] : 0u;
  // Pushed rows: the other ranks' gradients of this row wait in this rank's inbox.
  const long long inboxRow = peers.inboxAt >= 0 ? local / peers.size : 0;
  const long long inboxOffset = peers.inboxAt >= 0 ? peers.tables[t].inboxGradBase + inboxRow * dim : 0;
  const long long inboxFlagRow = peers.inboxAt >= 0 ? peers.tables[t].inboxFlagBase + inboxRow : 0;
  const OptimizerArgs& o = opt.part[tab.part[t]];
  // Rows of whole, aligned float4s: each lane loads its four weights, slots and gradients at once
  // (more bytes in flight per SM than four dependent rounds of scalar loads).
  const uintptr_t addresses = reinterpret_cast<uintptr_t>(g) | reinterpret_cast<uintptr_t>(w) | reinterpret_cast<uintptr_t>(s0) | reinterpret_cast<uintptr_t>(s1);
  if (vectorRows && dim % 4 == 0 && addresses % 16 == 0) {
    for (int d = lane * 4; d < dim; d += lanes * 4) {
      float4* gv = reinterpret_cast<float4*>(g + d);
      if (update) {
        float4* wv = reinterpret_cast<float4*>(w + d);
        const float4 gradient = fromRanks ? sumOverRanks<float4>(peers, ranks, offset + d, inboxOffset + d) : *gv;
        float4 weight = *wv;
        float4 a = s0 ? *reinterpret_cast<const float4*>(s0 + d) : make_float4(0.f, 0.f, 0.f, 0.f);
        float4 b = s1 ? *reinterpret_cast<const float4*>(s1 + d) : make_float4(0.f, 0.f, 0.f, 0.f);
        optimizerUpdate(o, weight.x, s0 ? &a.x : nullptr, s1 ? &b.x : nullptr, gradient.x * unscale);
        optimizerUpdate(o, weight.y, s0 ? &a.y : nullptr, s1 ? &b.y : nullptr, gradient.y * unscale);
        optimizerUpdate(o, weight.z, s0 ? &a.z : nullptr, s1 ? &b.z : nullptr, gradient.z * unscale);
        optimizerUpdate(o, weight.w, s0 ? &a.w : nullptr, s1 ? &b.w : nullptr, gradient.w * unscale);
        *wv = weight;
        if (s0) *reinterpret_cast<float4*>(s0 + d) = a;
        if (s1) *reinterpret_cast<float4*>(s1 + d) = b;
        for (int r = 0; owned && r < peers.size; r++)
          if (r != peers.owner) *reinterpret_cast<float4*>(reinterpret_cast<char*>(wv) + peers.tableOffsets[r]) = weight;
      }
      if (!fromRanks) *gv = make_float4(0.f, 0.f, 0.f, 0.f);
      for (unsigned left = owned ? ranks : 0u; left != 0u; left &= left - 1u)
        *reinterpret_cast<float4*>(rankGradient(peers, __ffs(left) - 1, offset + d, inboxOffset + d)) = make_float4(0.f, 0.f, 0.f, 0.f);
    }
  } else {
    for (int d = lane; d < dim; d += lanes) {
      if (update) {
        float v = w[d];
        const float gradient = fromRanks ? sumOverRanks<float>(peers, ranks, offset + d, inboxOffset + d) : g[d];
        optimizerUpdate(o, v, s0 ? s0 + d : nullptr, s1 ? s1 + d : nullptr, gradient * unscale);
        w[d] = v;
        for (int r = 0; owned && r < peers.size; r++)
          if (r != peers.owner) *reinterpret_cast<float*>(reinterpret_cast<char*>(w + d) + peers.tableOffsets[r]) = v;
      }
      if (!fromRanks) g[d] = 0.0f;
      for (unsigned left = owned ? ranks : 0u; left != 0u; left &= left - 1u) *rankGradient(peers, __ffs(left) - 1, offset + d, inboxOffset + d) = 0.0f;
    }
  }
  if (lane == 0 && !fromRanks) touched[row] = 0;
  if (lane == 0 && owned)
    for (unsigned left = ranks; left != 0u; left &= left - 1u) *rankFlag(peers, __ffs(left) - 1, row, inboxFlagRow) = 0;
}

/**
 * Each warp takes 32 list entries at a time: rows of at most kNarrowRow floats (the wide part's
 * weights, one float a row) one per lane, the wider ones one after another by the whole warp (a
 * warp per row left 31 lanes idle on the wide part's rows; WNDC_CUDA_NARROW_ROWS=0 restores that).
 */
constexpr int kNarrowRow = 4;

__global__ void sparseApply(OptimizerPair opt, const int* rowsList, const int* count, SparseTables tab, float* keyGrad, unsigned char* touched,
                            const float* lossScale, const int* skip, bool apply, bool vectorRows, bool narrowRows, PeerRows peers) {
  const int lane = threadIdx.x & 31;
  const long long warps = (long long)gridDim.x * (blockDim.x >> 5);
  const long long warp = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const bool update = apply && !(skip && *skip);
  const float unscale = lossScale ? 1.0f / *lossScale : 1.0f;
  const long long total = *count;
  if (!narrowRows) {
    for (long long i = warp; i < total; i += warps) {
      const long long row = rowsList[i];
      applyRow(opt, tab, i, row, tableOf(row, tab.rowBase, tab.count), lane, 32, keyGrad, touched, unscale, update, vectorRows, peers);
    }
    return;
  }
  for (long long first = warp * 32; first < total; first += warps * 32) {
    const long long i = first + lane;
    const bool listed = i < total;
    const long long row = listed ? rowsList[i] : 0;
    const int t = listed ? tableOf(row, tab.rowBase, tab.count) : 0;
    const bool narrow = listed && tab.dim[t] <= kNarrowRow;
    if (narrow) applyRow(opt, tab, i, row, t, 0, 1, keyGrad, touched, unscale, update, vectorRows, peers);
    for (unsigned wide = __ballot_sync(0xffffffffu, listed && !narrow); wide != 0u; wide &= wide - 1u) {
      const int from = __ffs(wide) - 1;
      const long long wideRow = __shfl_sync(0xffffffffu, row, from);
      const int wideTable = __shfl_sync(0xffffffffu, t, from);
      applyRow(opt, tab, first + from, wideRow, wideTable, lane, 32, keyGrad, touched, unscale, update, vectorRows, peers);
    }
  }
}

/** Warp per listed row of a table read from every rank: zeroes this rank's row (where it flagged it) and flag. */
__global__ void clearPeerRows(PeerRows peers, const int* rowsList, const int* count, const long long* tableRowBase, const long long* tableGradBase,
                              const int* tableDim, int tableCount, float* keyGrad, unsigned char* touched) {
  const int lane = threadIdx.x & 31;
  const long long warps = (long long)gridDim.x * (blockDim.x >> 5);
  const long long total = *count;
  for (long long i = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); i < total; i += warps) {
    const long long row = rowsList[i];
    const int t = tableOf(row, tableRowBase, tableCount);
    if (touched[row] == 0) continue;
    const int dim = tableDim[t];
    float* g = keyGrad + tableGradBase[t] + (row - tableRowBase[t]) * dim;
    if (dim % 4 == 0 && reinterpret_cast<uintptr_t>(g) % 16 == 0) {
      for (int d = lane * 4; d < dim; d += 128) *reinterpret_cast<float4*>(g + d) = make_float4(0.f, 0.f, 0.f, 0.f);
    } else {
      for (int d = lane; d < dim; d += 32) g[d] = 0.0f;
    }
    __syncwarp();
    if (lane == 0) touched[row] = 0;
  }
}

__global__ void checkFinite(const float* v, long long n, int* flag) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    if (!isfinite(v[i])) *flag = 1;
}

__global__ void checkFiniteRows(const int* rowsList, const int* count, const long long* tableRowBase, const long long* tableGradBase, const int* tableDim,
                                int tableCount, const float* keyGrad, int* flag) {
  const long long total = *count;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    const long long row = rowsList[i];
    const int t = tableOf(row, tableRowBase, tableCount);
    const int dim = tableDim[t];
    const float* g = keyGrad + tableGradBase[t] + (row - tableRowBase[t]) * dim;
    for (int d = 0; d < dim; d++)
      if (!isfinite(g[d])) *flag = 1;
  }
}

__global__ void updateLossScale(float* scale, int* goodSteps, int* skipped, const int* overflow, int interval) {
  if (*overflow) {
    *scale = fmaxf(*scale * 0.5f, 1.0f);
    *goodSteps = 0;
    *skipped += 1;
  } else if (++*goodSteps >= interval) {
    *scale = *scale * 2.0f;
    *goodSteps = 0;
  }
}

template <typename T>
__global__ void castKernel(const float* in, T* out, long long n) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) out[i] = fromFloat<T>(in[i]);
}

template <typename T>
__global__ void castToFloatKernel(const T* in, float* out, long long n) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) out[i] = toFloat<T>(in[i]);
}

}  // namespace

int reductionChunks(int rows) { return rows == 0 ? 0 : (rows + chunkRows(rows) - 1) / chunkRows(rows); }

void launchFinishColumns(cudaStream_t s, const float* partial, int chunks, int cols, float* out, float scale, bool accumulate) {
  if (cols == 0) return;
  finishColumns<<<blocksFor(cols, 256), 256, 0, s>>>(partial, chunks, cols, out, scale, accumulate);
  checkLaunch("column sum kernel");
}

void launchSum(cudaStream_t s, const float* v, int n, float* out, float scale) {
  sumAll<<<1, 1024, 0, s>>>(v, n, out, scale);
  checkLaunch("sum kernel");
}

template <typename T>
void launchWeightedColumns(cudaStream_t s, const T* x, int rows, int cols, const float* w, float* partial) {
  columnReduce(s, rows, cols, WeightedColumn<T>{x, cols, w}, partial, "weighted column sum kernel");
}

void launchWideNumericGrad(cudaStream_t s, const BatchView& b, const int* columns, int count, const float* dz, float* partial) {
  columnReduce(s, b.size, count, WideNumericColumn{b, columns, dz}, partial, "wide numeric gradient kernel");
}

template <typename T>
void launchLogitLoss(cudaStream_t s, const BatchView& b, const T* input, int width, const float* kernel, const float* bias, const float* wideLogit,
                     bool training, bool weighted, const float* lossScale, float* z, float* rowLoss, float* dz, float divisor) {
  if (b.size == 0) return;
  logitLoss<T><<<blocksFor((long long)b.size * 32, 256), 256, 0, s>>>(b, input, width, kernel, bias, wideLogit, training, weighted, lossScale, z,
                                                                      rowLoss, dz, divisor);
  checkLaunch("logit and loss kernel");
}

void launchSigmoid(cudaStream_t s, const float* z, float* p, int n) {
  if (n == 0) return;
  sigmoidKernel<<<blocksFor(n, 256), 256, 0, s>>>(z, p, n);
  checkLaunch("sigmoid kernel");
}

template <typename T>
void launchActivationForward(cudaStream_t s, const HiddenLayerArgs& a, const T* pre, T* out, bool training) {
  if (a.rows == 0) return;
  activationForward<T><<<blocksFor((long long)a.rows * a.units, 256), 256, 0, s>>>(a, pre, out, training);
  checkLaunch("activation kernel");
}

template <typename T>
int launchActivationBackward(cudaStream_t s, const HiddenLayerArgs& a, const T* dOut, const float* dz, const float* logitKernel, const T* pre, const T* out,
                             T* dPre, float* partial) {
  constexpr int V = 16 / sizeof(T);
  if (a.rows > 0 && a.units % V == 0) {
    dim3 block(32, kColumnThreadsY);
    dim3 grid((a.units / V + 31) / 32, (a.rows + vectorChunkRows(a.rows) - 1) / vectorChunkRows(a.rows));
    activationBackwardVector<T, V><<<grid, block, 0, s>>>(a, dOut, dz, logitKernel, pre, out, dPre, partial);
    checkLaunch("activation gradient kernel");
    return static_cast<int>(grid.y);
  }
  columnReduce(s, a.rows, a.units, ActivationBackward<T>{a, dOut, dz, logitKernel, pre, out, dPre}, partial, "activation gradient kernel");
  return reductionChunks(a.rows);
}

int maxReductionChunks(int rows) {
  if (rows == 0) return 1;
  return std::max(reductionChunks(rows), (rows + vectorChunkRows(rows) - 1) / vectorChunkRows(rows));
}

template <typename T>
void launchOuterProduct(cudaStream_t s, const float* dz, const float* kernel, int rows, int units, T* out) {
  if (rows == 0) return;
  outerProduct<T><<<blocksFor((long long)rows * units, 256), 256, 0, s>>>(dz, kernel, rows, units, out);
  checkLaunch("logit gradient kernel");
}

template <typename T>
void launchBatchNormForward(cudaStream_t s, const T* y, int rows, int units, const float* gamma, const float* beta, const float* mean,
                            const float* variance, float epsilon, T* out) {
  if (rows == 0) return;
  batchNormForward<T><<<blocksFor((long long)rows * units, 256), 256, 0, s>>>(y, rows, units, gamma, beta, mean, variance, epsilon, out);
  checkLaunch("batch norm kernel");
}

template <typename T>
void launchMoments(cudaStream_t s, const T* y, int rows, int units, float* partial, float* mean, float* variance) {
  const int chunks = reductionChunks(rows);
  columnReduce(s, rows, units, ColumnValue<T>{y, units}, partial, "batch mean kernel");
  launchFinishColumns(s, partial, chunks, units, mean, 1.0f / rows, false);
  columnReduce(s, rows, units, SquaredDeviation<T>{y, units, mean}, partial, "batch variance kernel");
  launchFinishColumns(s, partial, chunks, units, variance, 1.0f / rows, false);
}

template <typename T>
void launchBatchNormBackward(cudaStream_t s, const T* y, T* dOut, int rows, int units, const float* gamma, const float* mean, const float* variance,
                             float epsilon, float* partial, float* dgamma, float* dbeta) {
  const int chunks = reductionChunks(rows);
  columnReduce(s, rows, units, ColumnValue<T>{dOut, units}, partial, "batch norm beta gradient kernel");
  launchFinishColumns(s, partial, chunks, units, dbeta, 1.0f, false);
  columnReduce(s, rows, units, NormalisedTimesGrad<T>{y, dOut, units, mean, variance, epsilon}, partial, "batch norm gamma gradient kernel");
  launchFinishColumns(s, partial, chunks, units, dgamma, 1.0f, false);
  batchNormBackward<T><<<blocksFor((long long)rows * units, 256), 256, 0, s>>>(y, dOut, rows, units, gamma, mean, variance, epsilon, dgamma, dbeta);
  checkLaunch("batch norm gradient kernel");
}

void launchMovingAverage(cudaStream_t s, float* average, const float* value, int n, float rate, const int* skip) {
  movingAverage<<<blocksFor(n, 256), 256, 0, s>>>(average, value, n, rate, skip);
  checkLaunch("moving average kernel");
}

void launchDenseApply(cudaStream_t s, const OptimizerArgs& o, float* param, const float* grad, float* slot0, float* slot1, long long n,
                      const float* lossScale, const int* skip) {
  if (n == 0) return;
  denseApply<<<blocksFor(n, 256), 256, 0, s>>>(o, param, grad, slot0, slot1, n, lossScale, skip);
  checkLaunch("dense optimizer kernel");
}

void launchSparseApply(cudaStream_t s, const OptimizerPair& opt, const int* rowsList, const int* count, long long maxCount, const long long* tableRowBase,
                       const long long* tableGradBase, const int* tableDim, const int* tablePart, float* const* tables, float* const* slot0,
                       float* const* slot1, int tableCount, float* keyGrad, unsigned char* touched, const float* lossScale, const int* skip, bool apply,
                       const PeerRows& peers) {
  if (maxCount == 0 || tableCount == 0) return;
  // Rows of whole float4s take float4 loads and stores (+1.4% for two H100s on Outbrain);
  // WNDC_CUDA_VECTOR_SPARSE=0 keeps them scalar, for comparisons.
  static const bool vectorRows = [] { const char* v = std::getenv("WNDC_CUDA_VECTOR_SPARSE"); return !(v && std::string(v) == "0"); }();
  static const bool narrowRows = [] { const char* v = std::getenv("WNDC_CUDA_NARROW_ROWS"); return !(v && std::string(v) == "0"); }();
  const SparseTables tab{tableRowBase, tableGradBase, tableDim, tablePart, tables, slot0, slot1, tableCount};
  // The grid of a warp per row either way (the count is on the device): 32 rows a warp then leaves
  // the extra warps nothing to do past short lists, and up to 4096 blocks take long ones in turns.
  sparseApply<<<blocksFor(maxCount * 32, 256, 4096), 256, 0, s>>>(opt, rowsList, count, tab, keyGrad, touched, lossScale, skip, apply, vectorRows, narrowRows,
                                                                   peers);
  checkLaunch("sparse optimizer kernel");
}

void launchClearPeerRows(cudaStream_t s, const PeerRows& peers, const int* rowsList, const int* count, long long maxCount, const long long* tableRowBase,
                         const long long* tableGradBase, const int* tableDim, int tableCount, float* keyGrad, unsigned char* touched) {
  if (maxCount == 0 || tableCount == 0 || peers.size == 0) return;
  clearPeerRows<<<blocksFor(maxCount * 32, 256, 4096), 256, 0, s>>>(peers, rowsList, count, tableRowBase, tableGradBase, tableDim, tableCount, keyGrad, touched);
  checkLaunch("clear the rows read from every rank kernel");
}

void launchCheckFinite(cudaStream_t s, const float* v, long long n, int* flag) {
  if (n == 0) return;
  checkFinite<<<blocksFor(n, 256, 4096), 256, 0, s>>>(v, n, flag);
  checkLaunch("finite check kernel");
}

void launchCheckFiniteRows(cudaStream_t s, const int* rowsList, const int* count, long long maxCount, const long long* tableRowBase,
                           const long long* tableGradBase, const int* tableDim, int tableCount, const float* keyGrad, int* flag) {
  if (maxCount == 0 || tableCount == 0) return;
  checkFiniteRows<<<blocksFor(maxCount, 256, 4096), 256, 0, s>>>(rowsList, count, tableRowBase, tableGradBase, tableDim, tableCount, keyGrad, flag);
  checkLaunch("finite check kernel");
}

void launchUpdateLossScale(cudaStream_t s, float* scale, int* goodSteps, int* skipped, const int* overflow, int interval) {
  updateLossScale<<<1, 1, 0, s>>>(scale, goodSteps, skipped, overflow, interval);
  checkLaunch("loss scale kernel");
}

template <typename T>
void launchCast(cudaStream_t s, const float* in, T* out, long long n) {
  if (n == 0) return;
  castKernel<T><<<blocksFor(n, 256), 256, 0, s>>>(in, out, n);
  checkLaunch("cast kernel");
}

template <typename T>
void launchCastToFloat(cudaStream_t s, const T* in, float* out, long long n) {
  if (n == 0) return;
  castToFloatKernel<T><<<blocksFor(n, 256), 256, 0, s>>>(in, out, n);
  checkLaunch("cast kernel");
}

size_t selectFlaggedTempBytes(long long n) {
  size_t bytes = 0;
  check(cub::DeviceSelect::Flagged(nullptr, bytes, thrust::counting_iterator<int>(0), static_cast<const unsigned char*>(nullptr),
                                   static_cast<int*>(nullptr), static_cast<int*>(nullptr), static_cast<int>(n)),
        "cub::DeviceSelect::Flagged (size query)");
  return bytes;
}

void launchSelectFlagged(cudaStream_t s, const unsigned char* flags, long long n, int* out, int* count, void* temp, size_t tempBytes) {
  check(cub::DeviceSelect::Flagged(temp, tempBytes, thrust::counting_iterator<int>(0), flags, out, count, static_cast<int>(n), s),
        "cub::DeviceSelect::Flagged");
}

#define WNDC_INSTANTIATE(T)                                                                                                                           \
  template void launchWeightedColumns<T>(cudaStream_t, const T*, int, int, const float*, float*);                                                  \
  template void launchLogitLoss<T>(cudaStream_t, const BatchView&, const T*, int, const float*, const float*, const float*, bool, bool, const float*, \
                                   float*, float*, float*, float);                                                                                          \
  template void launchActivationForward<T>(cudaStream_t, const HiddenLayerArgs&, const T*, T*, bool);                                              \
  template int launchActivationBackward<T>(cudaStream_t, const HiddenLayerArgs&, const T*, const float*, const float*, const T*, const T*, T*,       \
                                           float*);                                                                                                 \
  template void launchOuterProduct<T>(cudaStream_t, const float*, const float*, int, int, T*);                                                     \
  template void launchBatchNormForward<T>(cudaStream_t, const T*, int, int, const float*, const float*, const float*, const float*, float, T*);     \
  template void launchMoments<T>(cudaStream_t, const T*, int, int, float*, float*, float*);                                                        \
  template void launchBatchNormBackward<T>(cudaStream_t, const T*, T*, int, int, const float*, const float*, const float*, float, float*, float*,   \
                                           float*);                                                                                                  \
  template void launchCast<T>(cudaStream_t, const float*, T*, long long);                                                                           \
  template void launchCastToFloat<T>(cudaStream_t, const T*, float*, long long);
WNDC_INSTANTIATE(float)
WNDC_INSTANTIATE(__nv_bfloat16)
WNDC_INSTANTIATE(__half)
#undef WNDC_INSTANTIATE

}  // namespace wndc
