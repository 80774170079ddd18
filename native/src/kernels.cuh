// Kernel launchers of the CUDA engine. Every launcher enqueues on `stream` and checks the launch;
// T is the activation type (float, __nv_bfloat16 or __half). Kernels compute in float.
#pragma once

#include "common.h"
#include "plan.h"

namespace wndc {

/** Where a step reads its rows: a host batch uploaded to the device, or rows of the device dataset. */
struct BatchView {
  const int* ids;
  const int* lengths;
  const float* weights;
  const float* numeric;
  const float* label;
  const float* weight;
  /** Batch row b reads source row rowIndex[b]; null: row b. */
  const int* rowIndex;
  int size;
  int idsWidth, lengthsWidth, weightsWidth, numericWidth;
};

/** One lookup as the kernels read it (device copy of Lookup plus the table's buffers). */
struct DevLookup {
  float* table;
  long long rows;
  int dim;
  int idOffset, width, lengthSlot, weightOffset, combiner, outOffset;
  /** Offset of the table in the gradient accumulator (floats) and in the touched-row flags (rows). */
  long long gradBase;
  long long rowBase;
  int index;  // position in its list, for error reports
};

/** Non-embedding deep input: a numeric column copy, or a whole indicator piece. */
struct DevDenseJob {
  int kind;  // 0 numeric column, 1 indicator
  int source;  // numeric: source column
  int outOffset;
  int idOffset, width, lengthSlot, weightOffset, buckets;
};

/** The first bad id a kernel met: row, lookup list (0 wide, 1 deep, 2 indicator), index, id. */
struct BadId {
  int flag;
  int row;
  int list;
  int index;
  long long id;
};

struct OptimizerArgs {
  OptimizerConfig config;
  float lr;
  /** Adam's lr_t, computed on the host. */
  float adamStep;
};

// --- lookups ---
void launchWideForward(cudaStream_t s, const BatchView& b, const DevLookup* lookups, int count, const float* bias,
                       const float* numericWeights, const int* numericColumns, int numericCount, float* wideLogit, BadId* bad);
template <typename T>
void launchEmbeddingForward(cudaStream_t s, const BatchView& b, const DevLookup* lookups, int count, T* x0, int inputWidth, BadId* bad);
template <typename T>
void launchDenseInputs(cudaStream_t s, const BatchView& b, const DevDenseJob* jobs, int count, T* x0, int inputWidth, BadId* bad);
void launchWideBackward(cudaStream_t s, const BatchView& b, const DevLookup* lookups, int count, const float* dz, float* keyGrad,
                        unsigned char* touched);
template <typename T>
void launchEmbeddingBackward(cudaStream_t s, const BatchView& b, const DevLookup* lookups, int count, const T* dx0, int inputWidth,
                             float* keyGrad, unsigned char* touched);

// --- head ---
/** z = deep logit (+ wide logit); in training also the per-row loss and dz (times the loss scale). */
template <typename T>
void launchLogitLoss(cudaStream_t s, const BatchView& b, const T* input, int width, const float* kernel, const float* bias,
                     const float* wideLogit, bool training, bool weighted, const float* lossScale, float* z, float* rowLoss, float* dz,
                     float divisor);
void launchSigmoid(cudaStream_t s, const float* z, float* p, int n);

// --- column reductions (two stages, deterministic) ---
int reductionChunks(int rows);
/** The most row chunks any column reduction uses for `rows` rows (the partial buffer's height). */
int maxReductionChunks(int rows);
/** Sum of each column of partial (chunks x cols) into out (scaled), in chunk order. */
void launchFinishColumns(cudaStream_t s, const float* partial, int chunks, int cols, float* out, float scale, bool accumulate);
/** Sum of v[0..n) in a fixed order into out[0]. */
void launchSum(cudaStream_t s, const float* v, int n, float* out, float scale);
/** partial sums of x[b,j] * w[b] (w null: 1). */
template <typename T>
void launchWeightedColumns(cudaStream_t s, const T* x, int rows, int cols, const float* w, float* partial);
/** partial sums of w[b] * numeric[row(b), columns[k]] for the wide numeric weights. */
void launchWideNumericGrad(cudaStream_t s, const BatchView& b, const int* columns, int count, const float* dz, float* partial);

// --- hidden layers ---
struct HiddenLayerArgs {
  int rows, units, layer;
  Activation activation;
  float dropout;
  /** Uploaded masks (rows x units) or null: counter-based draws from (seed, step, layer). */
  const float* mask;
  unsigned long long seed;
  long long step;
  /** Data parallelism: the global batch row of this batch's row 0 (the draws follow global rows). */
  long long rowOffset;
};
/** out = dropout(act(pre)); pre already holds x W + b. */
template <typename T>
void launchActivationForward(cudaStream_t s, const HiddenLayerArgs& a, const T* pre, T* out, bool training);
/**
 * dPre = dOut * mask * act'(.) and the bias gradient's partial column sums. Reads `pre` when
 * given (slow path), else the layer's ReLU output `out` (fast path: ReLU, no dropout). With
 * `logitKernel` set, dOut is the outer product dz x logitKernel instead of the buffer.
 */
/** Returns the number of row chunks whose partial sums it wrote (for launchFinishColumns). */
template <typename T>
int launchActivationBackward(cudaStream_t s, const HiddenLayerArgs& a, const T* dOut, const float* dz, const float* logitKernel,
                             const T* pre, const T* out, T* dPre, float* partial);
/** dOut = dz x kernel (rows x units), for a layer whose successor is the logit. */
template <typename T>
void launchOuterProduct(cudaStream_t s, const float* dz, const float* kernel, int rows, int units, T* out);

// --- batch norm ---
template <typename T>
void launchBatchNormForward(cudaStream_t s, const T* y, int rows, int units, const float* gamma, const float* beta, const float* mean,
                            const float* variance, float epsilon, T* out);
/** Batch mean and biased variance per column (two passes), into mean/variance. */
template <typename T>
void launchMoments(cudaStream_t s, const T* y, int rows, int units, float* partial, float* mean, float* variance);
/** From dZ (in dOut) computes dgamma, dbeta (into their gradient buffers) and replaces dOut with dY. */
template <typename T>
void launchBatchNormBackward(cudaStream_t s, const T* y, T* dOut, int rows, int units, const float* gamma, const float* mean,
                             const float* variance, float epsilon, float* partial, float* dgamma, float* dbeta);
void launchMovingAverage(cudaStream_t s, float* average, const float* value, int n, float rate, const int* skip);

// --- optimizers, casts, fp16 checks ---
void launchDenseApply(cudaStream_t s, const OptimizerArgs& o, float* param, const float* grad, float* slot0, float* slot1, long long n,
                      const float* lossScale, const int* skip);
/** The two parts' optimizers (wide, deep), passed by value to the sparse kernel. */
struct OptimizerPair {
  OptimizerArgs part[2];
};
/** One table as the pushed rows' kernels see it. */
struct PeerTable {
  long long rowBase, rows, gradBase;
  /** Floats and flags from the start of an inbox slot to this table's rows. */
  long long inboxGradBase, inboxFlagBase;
  int dim;
};
/**
 * Data parallelism over symmetric memory: every rank's table accumulators and touched flags, as
 * this GPU addresses them (device arrays of `size` pointers, rank order; this rank's are local).
 * Every table takes its rows' gradients from them. size 0: none.
 */
struct PeerRows {
  float* const* grads = nullptr;
  unsigned char* const* touched = nullptr;
  int size = 0;
  /** Per entry of the row list (launchListAnyRank, launchListOwned): the ranks (bit r) that flagged the row. */
  unsigned* listRanks = nullptr;
  /**
   * Rows split between the ranks (the owner of row r, counted over every table, is rank r % size):
   * this rank lists and updates only its own rows, writes their new weights into every rank's
   * tables and clears every rank's gradient and flag of them (with pushed rows: its own, and its
   * inbox's; the other ranks cleared theirs when they pushed them). A row's optimizer slots are kept by
   * its owner only (the other ranks' copies go stale: launchGatherOwnedRows reads them). -1: every
   * rank updates every row and clears its own later (launchClearPeerRows).
   */
  int owner = -1;
  /** With owner: per rank, the bytes from this rank's tables (values and slots) to that rank's (symmetric memory, one layout). */
  const long long* tableOffsets = nullptr;
  /**
   * Pushed rows (with owner; -1: not): once its backward pass is done each rank moves the rows it
   * flagged that another rank owns into that owner's inbox (launchPushRows), so that the owner's
   * listing and optimizer read its own memory only (reads over NVLink wait a round trip; writes do
   * not). An inbox holds size - 1 slots, one per other rank (inboxSlot); a slot lays the tables out
   * one after another (`tables`), each as the rows one rank owns: row r of table t at
   * (r - rowBase) / size. Floats from a rank's accumulator (grads[r]) to its inbox.
   */
  long long inboxAt = -1;
  /** Bytes from a rank's flags (touched[r]) to its inbox's flags; the floats and flags of one slot. */
  long long inboxFlagsAt = 0, inboxSlice = 0, flagSlice = 0;
  /** Per table, where its rows are (device array, table order; with inboxAt). */
  const PeerTable* tables = nullptr;
};
#ifdef __CUDACC__
/** Rank `rank`'s slot in `owner`'s inbox. */
__host__ __device__ inline int inboxSlot(int rank, int owner) { return rank < owner ? rank : rank - 1; }
/**
 * Where rank r's gradient of a row this rank owns is (r flagged it), `offset` floats into the
 * accumulator or `inboxOffset` into an inbox slot: its accumulator, or with pushed rows this
 * rank's own accumulator (r == owner) or inbox.
 */
__device__ inline float* rankGradient(const PeerRows& peers, int r, long long offset, long long inboxOffset) {
  if (peers.inboxAt < 0 || r == peers.owner) return peers.grads[r] + offset;
  return peers.grads[peers.owner] + peers.inboxAt + inboxSlot(r, peers.owner) * peers.inboxSlice + inboxOffset;
}
/** The flag of that row: `row` of the accumulator's flags, or `inboxRow` of an inbox slot's. */
__device__ inline unsigned char* rankFlag(const PeerRows& peers, int r, long long row, long long inboxRow) {
  if (peers.inboxAt < 0 || r == peers.owner) return peers.touched[r] + row;
  return peers.touched[peers.owner] + peers.inboxFlagsAt + inboxSlot(r, peers.owner) * peers.flagSlice + inboxRow;
}
#endif
/**
 * Applies each listed row's gradient, then clears it and its flag; with apply false only clears.
 * With `peers`, rows (listed by launchListAnyRank or launchListOwned) take the sum of the rows of the ranks that
 * flagged them, in rank order (the same bits on every rank), and are left for launchClearPeerRows:
 * the other ranks may still read them.
 */
void launchSparseApply(cudaStream_t s, const OptimizerPair& opt, const int* rowsList, const int* count, long long maxCount,
                       const long long* tableRowBase, const long long* tableGradBase, const int* tableDim, const int* tablePart,
                       float* const* tables, float* const* slot0, float* const* slot1, int tableCount, float* keyGrad,
                       unsigned char* touched, const float* lossScale, const int* skip, bool apply, const PeerRows& peers = {});
/** Clears this rank's gradient and flag of each listed row (read from every rank), once no rank reads them. */
void launchClearPeerRows(cudaStream_t s, const PeerRows& peers, const int* rowsList, const int* count, long long maxCount, const long long* tableRowBase,
                         const long long* tableGradBase, const int* tableDim, int tableCount, float* keyGrad, unsigned char* touched);
/** Sets *flag when any gradient value is Inf or NaN. */
void launchCheckFinite(cudaStream_t s, const float* v, long long n, int* flag);
void launchCheckFiniteRows(cudaStream_t s, const int* rowsList, const int* count, long long maxCount, const long long* tableRowBase,
                           const long long* tableGradBase, const int* tableDim, int tableCount, const float* keyGrad, int* flag);
/** fp16 dynamic loss scaling: halves the scale and counts a skip on overflow, doubles it after `interval` good steps. */
void launchUpdateLossScale(cudaStream_t s, float* scale, int* goodSteps, int* skipped, const int* overflow, int interval);
template <typename T>
void launchCast(cudaStream_t s, const float* in, T* out, long long n);
template <typename T>
void launchCastToFloat(cudaStream_t s, const T* in, float* out, long long n);
/** Indices i < n with flags[i] != 0, ascending, and their count (CUB). */
size_t selectFlaggedTempBytes(long long n);
void launchSelectFlagged(cudaStream_t s, const unsigned char* flags, long long n, int* out, int* count, void* temp, size_t tempBytes);

}  // namespace wndc

namespace wndc {

// --- data parallelism: exchanging the touched rows of large tables ---
/**
 * A record of a table's touched rows, as 32-bit words: [count, rows[capacity], padding to 16
 * bytes, values[capacity x dim] (float32, or bfloat16: two to a word)], padded to 16 bytes so
 * that records can follow one another.
 */
inline __host__ __device__ long long recordValuesOffset(long long capacity) { return (1 + capacity + 3) / 4 * 4; }
inline __host__ __device__ long long recordWords(long long capacity, int dim, bool bf16) {
  return (recordValuesOffset(capacity) + (bf16 ? capacity * dim / 2 : capacity * dim) + 3) / 4 * 4;
}
/** Whether a table's records use whole float4s (dim % 4 == 0 and aligned rows): bfloat16 records need it. */
bool recordVectorised(const float* grad, int dim);
/** A range of flags to list: offset + i for the indices i < rows with flags[i] != 0 are appended to `list`, their number added to *count. */
struct FlagRange {
  const unsigned char* flags;
  long long rows;
  int* list;
  int* count;
  long long offset = 0;
};
/**
 * Lists the flagged indices of each range in one launch, in no set order (the counts must start at
 * zero); `mostRows` is the longest range. Cheaper than launchSelectFlagged per range where order does not matter.
 */
void launchListFlagged(cudaStream_t s, const FlagRange* ranges, int rangeCount, long long mostRows);
/**
 * A table split between the ranks (rows `rows` of `dim` floats from global row `rowBase`): each
 * row from its owner's copy (rank (rowBase + row) % size, offsets[r] bytes from `local`) into `out`.
 */
void launchGatherOwnedRows(cudaStream_t s, const float* local, float* out, long long rows, int dim, long long rowBase, int size, const long long* offsets);
/** Rows begin .. begin + rows - 1 of the accumulator (one table's). */
struct RowRange {
  long long begin, rows;
};
/**
 * Lists (in no set order) the rows of each range flagged on any rank of `peers`, into one list, and
 * beside each entry the ranks that flagged it (peers.listRanks); *count must start at zero;
 * `mostRows` is the longest range.
 */
void launchListAnyRank(cudaStream_t s, const PeerRows& peers, const RowRange* ranges, int rangeCount, long long mostRows, int* list, int* count);
/**
 * Pushed rows (peers.inboxAt): moves the rows this rank flagged (`touched`) that other ranks own
 * into their owners' inboxes, flags them there and clears them here; `mostRows` is the largest table.
 */
void launchPushRows(cudaStream_t s, const PeerRows& peers, int tableCount, long long mostRows, float* keyGrad, unsigned char* touched);
/**
 * Pushed rows: lists (in no set order) the rows this rank owns that any rank flagged (its own
 * flags, and its inbox's), with the ranks beside each (peers.listRanks); *count must start at zero.
 */
void launchListOwned(cudaStream_t s, const PeerRows& peers, int tableCount, long long mostRows, int* list, int* count);
/** What packing does to the packed rows of the accumulator: zero them, or keep them (as sent: rounded to bfloat16 with bfloat16 records). */
enum class PackMode { Clear, Keep };
/** Copies a table's touched rows (rows are local to the table) into a record for an all-gather. */
void launchPackRows(cudaStream_t s, const int* rows, const int* count, int capacity, float* grad, int dim, int* record, PackMode mode, bool bf16);
/**
 * Adds every rank's record (size records of `words` words each) but `skipRank`'s (-1: none), in
 * rank order, into the accumulator and flags the rows.
 */
void launchUnpackRecords(cudaStream_t s, const int* records, long long words, int size, int capacity, float* grad, int dim, unsigned char* touched, int skipRank,
                         bool bf16);

}  // namespace wndc
