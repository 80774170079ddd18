// The training step of one model on one GPU. Row-major tensors of the IR map onto cuBLASLt's
// column-major products as follows (B = batch rows):
//   forward   Y[B,u]  = X[B,i] W[i,u]   ->  D(u x B) = W(u x i) . X(i x B)
//   input grad dX[B,i] = dP[B,u] W^T     ->  D(i x B) = W^T      . dP(u x B)
//   kernel grad dW[i,u] = X^T dP         ->  D(u x i) = dP(u x B) . X^T
// Activations are stored in T (float, or bf16 / fp16 with --amp); master weights, gradients of
// weights and optimizer state are float32. Table gradients are accumulated into a float buffer
// laid out like the tables, touched rows are flagged, compacted (ascending) and updated.
#include "model.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>
#include <type_traits>

#include "gemm.h"
#include "kernels.cuh"
#include "world.h"

namespace wndc {

namespace {

constexpr size_t kWorkspaceBytes = 64ull << 20;

/** Whether the environment variable `name` is "0" (a default way switched off, for comparisons). */
bool switchedOff(const char* name) {
  const char* value = std::getenv(name);
  return value && std::string(value) == "0";
}

/** Whether the environment variable `name` is "1" (a way not taken by default switched on). */
bool switchedOn(const char* name) {
  const char* value = std::getenv(name);
  return value && std::string(value) == "1";
}

/** Device allocations with names, so that running out of memory says what holds it. */
class DeviceMemory {
 public:
  ~DeviceMemory() { releaseAll(); }

  void* allocate(const std::string& name, size_t bytes) {
    if (bytes == 0) bytes = 16;
    void* p = nullptr;
    cudaError_t status = cudaMalloc(&p, bytes);
    if (status != cudaSuccess) {
      cudaGetLastError();
      size_t freeBytes = 0, totalBytes = 0;
      cudaMemGetInfo(&freeBytes, &totalBytes);
      throw Error("out of device memory allocating " + name + " (" + mib(bytes) + "): the model already holds " + mib(used_) + summary() +
                  "; the GPU has " + mib(freeBytes) + " free of " + mib(totalBytes) +
                  ". Lower the batch size (--global_batch_size), the tables' buckets or dims, or use a GPU with more memory");
    }
    blocks_[p] = {name, bytes, true};
    used_ += bytes;
    peak_ = std::max(peak_, used_);
    return p;
  }

  /** Counts (and names) a block allocated elsewhere, which its owner frees: release() only forgets it. */
  void adopt(const std::string& name, void* p, size_t bytes) {
    blocks_[p] = {name, bytes, false};
    used_ += bytes;
    peak_ = std::max(peak_, used_);
  }

  template <typename T>
  T* make(const std::string& name, size_t count) {
    return static_cast<T*>(allocate(name, count * sizeof(T)));
  }

  void release(void* p) {
    auto found = blocks_.find(p);
    if (found == blocks_.end()) return;
    used_ -= found->second.bytes;
    const bool owned = found->second.owned;
    blocks_.erase(found);
    if (owned) cudaFree(p);
  }

  void releaseAll() {
    for (auto& [p, block] : blocks_)
      if (block.owned) cudaFree(p);
    blocks_.clear();
    used_ = 0;
  }

  /** Forgets every block without freeing it (cudaFree waits for the whole GPU): for a process on its way out. */
  void abandon() {
    blocks_.clear();
    used_ = 0;
  }

  long long used() const { return used_; }
  long long peak() const { return peak_; }

  /** Bytes per category (the part of a name before ':'), largest first. */
  std::vector<std::pair<std::string, long long>> items() const {
    std::map<std::string, long long> byCategory;
    for (auto& [p, block] : blocks_) byCategory[block.name.substr(0, block.name.find(':'))] += block.bytes;
    std::vector<std::pair<std::string, long long>> out(byCategory.begin(), byCategory.end());
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.second > b.second; });
    return out;
  }

 private:
  std::string summary() const {
    std::string text;
    for (auto& [name, bytes] : items()) text += (text.empty() ? " (" : ", ") + name + " " + mib(bytes);
    return text.empty() ? text : text + ")";
  }

  struct Block {
    std::string name;
    size_t bytes;
    bool owned;
  };
  std::map<void*, Block> blocks_;
  long long used_ = 0, peak_ = 0;
};

template <typename T> constexpr cudaDataType_t dataType();
template <> constexpr cudaDataType_t dataType<float>() { return CUDA_R_32F; }
template <> constexpr cudaDataType_t dataType<__nv_bfloat16>() { return CUDA_R_16BF; }
template <> constexpr cudaDataType_t dataType<__half>() { return CUDA_R_16F; }

struct ParameterBuffers {
  float* value = nullptr;
  float* slots[2] = {nullptr, nullptr};
  float* grad = nullptr;  // dense parameters
  long long gradBase = -1, rowBase = -1;  // tables
};

/** Device buffers of one batch's columns. */
struct BatchBuffers {
  int* ids = nullptr;
  int* lengths = nullptr;
  float* weights = nullptr;
  float* numeric = nullptr;
  float* label = nullptr;
  float* weight = nullptr;
};

struct HostStaging {
  void* pinned = nullptr;
  size_t bytes = 0;
  cudaEvent_t copied = nullptr;  // the copy from this staging area has finished
  cudaEvent_t consumed = nullptr;  // the last step reading the matching device buffers has finished
  BatchBuffers device;
};


template <typename T>
class ModelImpl final : public Model {
 public:
  ModelImpl(const Plan& plan, int device) : plan_(plan), device_(device) {
    check(cudaSetDevice(device), "cudaSetDevice");
    // Priorities, highest first: communication, compute, side (see joinWorldBuffers). Alone, the
    // compute stream is the only one that counts.
    int least = 0, greatest = 0;
    check(cudaDeviceGetStreamPriorityRange(&least, &greatest), "cudaDeviceGetStreamPriorityRange");
    check(cudaStreamCreateWithPriority(&stream_, cudaStreamNonBlocking, greatest < least ? greatest + 1 : least), "cudaStreamCreate (compute)");
    check(cudaStreamCreateWithFlags(&copyStream_, cudaStreamNonBlocking), "cudaStreamCreate (copy)");
    check(cudaEventCreateWithFlags(&stepDone_, cudaEventDisableTiming), "cudaEventCreate");
    try {
      build();
    } catch (...) {
      release();
      throw;
    }
  }

  ~ModelImpl() override { release(); }

  // ---- parameters ----

  void setTensor(int parameter, int slot, const float* data, size_t n) override {
    float* dst = tensor(parameter, slot, n);
    settleKernels();
    check(cudaMemcpyAsync(dst, data, n * sizeof(float), cudaMemcpyHostToDevice, stream_), "copy a parameter to the GPU");
    awaitRanks(stream_, "copy a parameter to the GPU");
    if (slot >= 0 && slot < 2) slotsScattered_[parameter][slot] = false;  // whole here again
  }

  std::vector<float> getTensor(int parameter, int slot) override {
    const size_t n = static_cast<size_t>(param(parameter).size);
    std::vector<float> out(n);
    float* src = tensor(parameter, slot, n);
    settleKernels();
    if (slot >= 0) gatherOwnedSlots(stream_, parameter, slot);
    check(cudaMemcpyAsync(out.data(), src, n * sizeof(float), cudaMemcpyDeviceToHost, stream_), "copy a parameter from the GPU");
    awaitRanks(stream_, "copy a parameter from the GPU");
    return out;
  }

  /**
   * Rows split between the ranks: where a split step has run since this slot was last whole here,
   * its rows are copied in place from their owners (the other ranks' memory; they cannot update it
   * before this rank joins their next step). In place is safe: this rank's own rows copy onto
   * themselves, and the other rows' owners never write this rank's slots.
   */
  void gatherOwnedSlots(cudaStream_t s, int p, int slot) {
    const Parameter& spec = plan_.parameters[p];
    if (slot >= std::min(spec.slots, 2) || !slotsScattered_[p][slot] || peers_.owner < 0) return;
    check(cudaStreamWaitEvent(s, peerRowsCleared_, 0), "wait for the last step's tables");
    launchGatherOwnedRows(s, buffers_[p].slots[slot], buffers_[p].slots[slot], spec.rows, spec.dim, buffers_[p].rowBase, peers_.size, peers_.tableOffsets);
    slotsScattered_[p][slot] = false;
  }

  // ---- data ----

  void setBatch(const HostBatch& batch, int size) override {
    checkSize(size);
    const int k = nextStaging_;
    nextStaging_ ^= 1;
    HostStaging& st = staging_[k];
    // The staging area is reused two batches later: wait until its previous copy has left it.
    check(cudaEventSynchronize(st.copied), "wait for a batch copy");
    char* p = static_cast<char*>(st.pinned);
    const Columns c = columns(size);
    std::memcpy(p, batch.ids, c.ids);
    std::memcpy(p + c.ids, batch.lengths, c.lengths);
    std::memcpy(p + c.ids + c.lengths, batch.weights, c.weights);
    std::memcpy(p + c.ids + c.lengths + c.weights, batch.numeric, c.numeric);
    std::memcpy(p + c.ids + c.lengths + c.weights + c.numeric, batch.label, c.rows);
    std::memcpy(p + c.ids + c.lengths + c.weights + c.numeric + c.rows, batch.weight, c.rows);
    // The device buffers may still be read by the step before last.
    check(cudaStreamWaitEvent(copyStream_, st.consumed, 0), "order a batch copy");
    copyColumns(p, st.device, c, copyStream_);
    check(cudaEventRecord(st.copied, copyStream_), "record a batch copy");
    view_ = viewOf(st.device, nullptr, size);
    pendingCopy_ = st.copied;
    currentStaging_ = k;
  }

  long long setDataset(const HostBatch& batch, long long rows) override {
    if (dataset_.ids) throw Error("a dataset is already on the GPU");
    const Columns c = columns(rows);
    dataset_.ids = memory_.make<int>("dataset:ids", std::max<long long>(1, rows * plan_.idsWidth));
    dataset_.lengths = memory_.make<int>("dataset:lengths", std::max<long long>(1, rows * plan_.lengthsWidth));
    dataset_.weights = memory_.make<float>("dataset:weights", std::max<long long>(1, rows * plan_.weightsWidth));
    dataset_.numeric = memory_.make<float>("dataset:numeric", std::max<long long>(1, rows * plan_.numericWidth));
    dataset_.label = memory_.make<float>("dataset:label", std::max<long long>(1, rows));
    dataset_.weight = memory_.make<float>("dataset:weight", std::max<long long>(1, rows));
    datasetRows_ = rows;
    check(cudaMemcpy(dataset_.ids, batch.ids, c.ids, cudaMemcpyHostToDevice), "copy the dataset to the GPU");
    check(cudaMemcpy(dataset_.lengths, batch.lengths, c.lengths, cudaMemcpyHostToDevice), "copy the dataset to the GPU");
    check(cudaMemcpy(dataset_.weights, batch.weights, c.weights, cudaMemcpyHostToDevice), "copy the dataset to the GPU");
    check(cudaMemcpy(dataset_.numeric, batch.numeric, c.numeric, cudaMemcpyHostToDevice), "copy the dataset to the GPU");
    check(cudaMemcpy(dataset_.label, batch.label, c.rows, cudaMemcpyHostToDevice), "copy the dataset to the GPU");
    check(cudaMemcpy(dataset_.weight, batch.weight, c.rows, cudaMemcpyHostToDevice), "copy the dataset to the GPU");
    return static_cast<long long>(c.ids + c.lengths + c.weights + c.numeric + 2 * c.rows + rows * sizeof(int));
  }

  void setOrder(const int* order, long long n) override {
    if (!dataset_.ids) throw Error("setOrder before setDataset");
    for (long long i = 0; i < n; i++)
      if (order[i] < 0 || order[i] >= datasetRows_) throw Error("order entry " + std::to_string(i) + " is outside the dataset's rows");
    // Steps enqueued earlier may still read the old order.
    awaitRanks(stream_, "wait before replacing the row order");
    if (n > orderCapacity_) {
      // An order may be longer than the dataset: several epochs' permutations back to back. The new
      // buffer comes first, so a failed allocation leaves the old order in place.
      int* larger = memory_.make<int>("dataset:order", std::max<long long>(1, n));
      memory_.release(order_);
      order_ = larger;
      orderCapacity_ = n;
    }
    check(cudaMemcpy(order_, order, n * sizeof(int), cudaMemcpyHostToDevice), "copy the row order to the GPU");
    orderRows_ = n;
  }

  void selectRows(long long start, int size) override {
    if (!dataset_.ids) throw Error("selectRows before setDataset");
    checkSize(size);
    if (start < 0 || start + size > orderRows_) throw Error("rows [" + std::to_string(start) + ", " + std::to_string(start + size) + ") are outside the order");
    view_ = viewOf(dataset_, order_ + start, size);
    pendingCopy_ = nullptr;
    currentStaging_ = -1;
  }

  // ---- steps ----

  std::vector<float> predict() override {
    beginStep();
    globalRows_ = rowOffset_ = 0;
    forward(false, 0, nullptr);
    launchSigmoid(stream_, z_, probabilities_, view_.size);
    std::vector<float> out(view_.size);
    endStep();
    check(cudaMemcpyAsync(out.data(), probabilities_, out.size() * sizeof(float), cudaMemcpyDeviceToHost, stream_), "copy predictions from the GPU");
    synchronize();
    return out;
  }

  GradientsOut gradients(long long step, const std::vector<const float*>* masks) override {
    beginStep();
    globalRows_ = rowOffset_ = 0;
    uploadMasks(masks);
    resetStepFlags();
    forward(true, step, masks);
    backward(step, masks, false, nullptr);
    compactTouched(stream_);
    endStep();
    synchronize();
    GradientsOut out;
    out.loss = lastLoss();
    const float unscale = plan_.precision == Precision::Fp16 ? 1.0f / lossScale() : 1.0f;
    for (size_t p = 0; p < plan_.parameters.size(); p++) {
      if (plan_.parameters[p].kind != ParameterKind::Dense) continue;
      std::vector<float> g(plan_.parameters[p].size);
      check(cudaMemcpy(g.data(), buffers_[p].grad, g.size() * sizeof(float), cudaMemcpyDeviceToHost), "copy gradients from the GPU");
      for (float& v : g) v *= unscale;
      out.dense.push_back(std::move(g));
    }
    int count = 0;
    if (!tables_.empty()) check(cudaMemcpy(&count, touchedCount_, sizeof(int), cudaMemcpyDeviceToHost), "copy gradients from the GPU");
    std::vector<int> rows(count);
    if (count > 0) check(cudaMemcpy(rows.data(), touchedList_, count * sizeof(int), cudaMemcpyDeviceToHost), "copy gradients from the GPU");
    size_t next = 0;
    for (int t = 0; t < static_cast<int>(tables_.size()); t++) {
      const int p = tables_[t];
      const Parameter& spec = plan_.parameters[p];
      const long long base = buffers_[p].rowBase;
      SparseGradientOut sg{p, {}, {}};
      while (next < rows.size() && rows[next] < base + spec.rows) sg.rows.push_back(static_cast<int>(rows[next++] - base));
      if (sg.rows.empty()) continue;
      sg.values.resize(sg.rows.size() * spec.dim);
      for (size_t r = 0; r < sg.rows.size(); r++)
        check(cudaMemcpy(sg.values.data() + r * spec.dim, keyGrad_ + buffers_[p].gradBase + (long long)sg.rows[r] * spec.dim, spec.dim * sizeof(float),
                         cudaMemcpyDeviceToHost),
              "copy gradients from the GPU");
      for (float& v : sg.values) v *= unscale;
      out.sparse.push_back(std::move(sg));
    }
    // Leave the accumulators clean for the next step.
    sparseApply(stream_, StepScalars{0, 0, 0, 0}, false);
    synchronize();
    return out;
  }

  void trainStep(long long step, const StepScalars& scalars, const std::vector<const float*>* masks) override {
    beginStep();
    globalRows_ = scalars.globalRows;
    rowOffset_ = scalars.rowOffset;
    uploadMasks(masks);
    resetStepFlags();
    forward(true, step, masks);
    const bool fp16 = plan_.precision == Precision::Fp16;
    // Without loss scaling (whose overflow check needs every gradient first), a data-parallel step
    // runs each optimizer as soon as its gradients have crossed the ranks (see backward): the dense
    // ones on the communication stream, the tables' on the side stream.
    const bool overlapped = world_ && !fp16;
    const bool sparseOnSide = overlapped && !tables_.empty();
    backward(step, masks, world_ != nullptr, overlapped ? &scalars : nullptr);
    // Rows split between the ranks: each rank updated its own rows' slots only.
    if (peers_.owner >= 0)
      for (int p : tables_) slotsScattered_[p] = {true, true};
    if (!overlapped) {
      compactTouched(stream_);
      mark("touched rows");
    }
    if (fp16) {
      for (size_t p = 0; p < plan_.parameters.size(); p++)
        if (plan_.parameters[p].kind == ParameterKind::Dense) launchCheckFinite(stream_, buffers_[p].grad, plan_.parameters[p].size, overflow_);
      launchCheckFiniteRows(stream_, touchedList_, touchedCount_, totalRows_, tableRowBaseDev_, tableGradBaseDev_, tableDimDev_, (int)tables_.size(), keyGrad_,
                            overflow_);
      if (world_) onComm([&] { world_->allReduceMax(overflow_, 1, nccl::ncclInt32, commStream_, "the overflow flag"); });
      mark("overflow check");
    }
    for (size_t p = 0; p < plan_.parameters.size() && !overlapped; p++)
      if (plan_.parameters[p].kind == ParameterKind::Dense) applyDense(stream_, p, scalars);
    mark("dense optimizers");
    if (sparseOnSide) {
      // Rows split between the ranks: the other ranks write into this rank's tables too.
      check(cudaStreamWaitEvent(stream_, peers_.owner >= 0 ? peerRowsCleared_ : sideDone_, 0), "wait for the tables' optimizers");
      stamp(stream_, "compute: tables updated");
    } else if (!overlapped) {
      sparseApply(stream_, scalars, true);
    }
    mark("sparse optimizers");
    // A batch of no rows (a rank's share of a tiny last batch) has no moments; an fp16 step skipped
    // for overflow leaves the averages as they were, like every other state.
    for (size_t i = 0; i < plan_.layers.size() && view_.size > 0; i++) {
      const Layer& layer = plan_.layers[i];
      if (layer.movingMean < 0) continue;
      launchMovingAverage(stream_, buffers_[layer.movingMean].value, batchMean_[i], layer.units, movingAverageRate_, fp16 ? overflow_ : nullptr);
      launchMovingAverage(stream_, buffers_[layer.movingVariance].value, batchVariance_[i], layer.units, movingAverageRate_, fp16 ? overflow_ : nullptr);
    }
    if (fp16) launchUpdateLossScale(stream_, lossScale_, goodSteps_, skipped_, overflow_, plan_.lossScaleGrowthInterval);
    endStep(true);
  }

  void synchronize() override {
    awaitRanks(stepDone_, "training step on the GPU");
    if (host_->bad.flag) {
      const BadId bad = host_->bad;
      host_->bad.flag = 0;
      check(cudaMemset(badId_, 0, sizeof(BadId)), "reset the bad-id record");
      const std::vector<std::string>& names = bad.list == 0 ? wideLookupNames_ : bad.list == 1 ? deepLookupNames_ : indicatorNames_;
      const std::string what = bad.index >= 0 && bad.index < (int)names.size() ? names[bad.index] : "a lookup";
      throw Error("batch row " + std::to_string(bad.row) + ": id " + std::to_string(bad.id) + " is outside " + what +
                  " (the step ran without it); the data was encoded for another spec, or the shards are corrupt: re-run `wndc preprocess` with this spec");
    }
    if (profiling_ && profiledStep_) {
      for (size_t i = 1; i < marks_.used; i++) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, marks_.events[i - 1], marks_.events[i]) != cudaSuccess) continue;
        addPhase(marks_.names[i], ms);
      }
      // The communication stream's spans, which overlap the compute stream's phases.
      static const char* commSpanNames[] = {"communication stream: tables (overlapped)", "communication stream: kernel gradients (overlapped)"};
      for (int k = 0; k + 1 < kCommMarks && commMarked_; k++) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, commEvents_[k], commEvents_[k + 1]) != cudaSuccess) continue;
        addPhase(commSpanNames[k], ms);
      }
      for (size_t i = 0; i < stamps_.used && marks_.used > 0; i++) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, marks_.events[0], stamps_.events[i]) != cudaSuccess) continue;
        addPhase("at " + stamps_.names[i], ms);
      }
      commMarked_ = false;
      profiledStep_ = false;
    }
  }

  float lastLoss() override { return host_->loss; }

  long long skippedSteps() override {
    synchronize();
    return host_->skipped;
  }

  float lossScale() override {
    if (plan_.precision != Precision::Fp16) return 1.0f;
    float scale = 1;
    check(cudaMemcpy(&scale, lossScale_, sizeof scale, cudaMemcpyDeviceToHost), "read the loss scale");
    return scale;
  }

  MemoryReport memory() override {
    size_t freeBytes = 0, totalBytes = 0;
    check(cudaMemGetInfo(&freeBytes, &totalBytes), "cudaMemGetInfo");
    return {memory_.used(), memory_.peak(), (long long)freeBytes, (long long)totalBytes, memory_.items()};
  }

  void setProfiling(bool on) override {
    profiling_ = on;
    phaseTotals_.clear();
    phaseSamples_.clear();
    phaseIndex_.clear();
  }

  std::vector<std::pair<std::string, double>> phaseTimes() override {
    std::vector<std::pair<std::string, double>> out;
    for (size_t i = 0; i < phaseTotals_.size(); i++) out.emplace_back(phaseTotals_[i].first, phaseSamples_[i] ? phaseTotals_[i].second / phaseSamples_[i] : 0.0);
    return out;
  }

  void dispose() override { release(); }

 private:
  struct Columns {
    size_t ids, lengths, weights, numeric, rows;
  };
  struct HostState {
    float loss;
    int skipped;
    BadId bad;
  };

  Columns columns(long long rows) const {
    return {rows * plan_.idsWidth * sizeof(int), rows * plan_.lengthsWidth * sizeof(int), rows * plan_.weightsWidth * sizeof(float),
            rows * plan_.numericWidth * sizeof(float), rows * sizeof(float)};
  }

  void checkSize(int size) const {
    if (size < 0 || size > plan_.batchCapacity)
      throw Error("a batch of " + std::to_string(size) + " rows exceeds the engine's capacity of " + std::to_string(plan_.batchCapacity) + " rows");
  }

  const Parameter& param(int p) const {
    if (p < 0 || p >= static_cast<int>(plan_.parameters.size())) throw Error("parameter index " + std::to_string(p) + " out of range");
    return plan_.parameters[p];
  }

  float* tensor(int parameter, int slot, size_t n) {
    const Parameter& spec = param(parameter);
    if (n != static_cast<size_t>(spec.size))
      throw Error("`" + spec.name + "` has " + std::to_string(spec.size) + " values, " + std::to_string(n) + " given");
    if (slot < 0) return buffers_[parameter].value;
    if (slot >= spec.slots) throw Error("`" + spec.name + "` has no optimizer slot " + std::to_string(slot));
    return buffers_[parameter].slots[slot];
  }

  BatchView viewOf(const BatchBuffers& b, const int* rowIndex, int size) const {
    return {b.ids, b.lengths, b.weights, b.numeric, b.label, b.weight, rowIndex, size, plan_.idsWidth, plan_.lengthsWidth, plan_.weightsWidth, plan_.numericWidth};
  }

  void copyColumns(const char* p, const BatchBuffers& d, const Columns& c, cudaStream_t s) {
    check(cudaMemcpyAsync(d.ids, p, c.ids, cudaMemcpyHostToDevice, s), "copy a batch to the GPU");
    p += c.ids;
    check(cudaMemcpyAsync(d.lengths, p, c.lengths, cudaMemcpyHostToDevice, s), "copy a batch to the GPU");
    p += c.lengths;
    check(cudaMemcpyAsync(d.weights, p, c.weights, cudaMemcpyHostToDevice, s), "copy a batch to the GPU");
    p += c.weights;
    check(cudaMemcpyAsync(d.numeric, p, c.numeric, cudaMemcpyHostToDevice, s), "copy a batch to the GPU");
    p += c.numeric;
    check(cudaMemcpyAsync(d.label, p, c.rows, cudaMemcpyHostToDevice, s), "copy a batch to the GPU");
    p += c.rows;
    check(cudaMemcpyAsync(d.weight, p, c.rows, cudaMemcpyHostToDevice, s), "copy a batch to the GPU");
  }

  OptimizerArgs optimizerArgs(int part, const StepScalars& s) const {
    return {plan_.optimizers[part], part == 0 ? s.lrWide : s.lrDeep, part == 0 ? s.adamStepWide : s.adamStepDeep};
  }

  /**
   * With profiling on, ends the span `name` (the work enqueued since the previous mark) with an
   * event. Names are C strings, or `before` N `after` for numbered ones, built only when profiling:
   * the training step calls these every step.
   */
  void mark(const char* name) {
    if (profiling_) marks_.record(stream_, name);
  }
  void mark(const char* before, size_t n, const char* after) {
    if (profiling_) marks_.record(stream_, before + std::to_string(n) + after);
  }

  void addPhase(const std::string& name, double ms) {
    auto found = phaseIndex_.find(name);
    if (found == phaseIndex_.end()) {
      found = phaseIndex_.emplace(name, phaseTotals_.size()).first;
      phaseTotals_.emplace_back(name, 0.0);
      phaseSamples_.push_back(0);
    }
    phaseTotals_[found->second].second += ms;
    phaseSamples_[found->second]++;
  }

  /** With profiling on, records communication-stream event `k` (see commEvents_). */
  void commMark(int k) {
    if (!profiling_) return;
    if (!commEvents_[k]) check(cudaEventCreate(&commEvents_[k]), "cudaEventCreate (profiling)");
    check(cudaEventRecord(commEvents_[k], commStream_), "record a profiling event");
    if (k == kCommMarks - 1) commMarked_ = true;
  }

  /**
   * With profiling on, a timeline point on stream `s`: reported as "at <name>", milliseconds from
   * the step's start (the streams overlap, so spans alone cannot place their work).
   */
  void stamp(cudaStream_t s, const char* name) {
    if (profiling_) stamps_.record(s, name);
  }
  void stamp(cudaStream_t s, const char* before, size_t n, const char* after) {
    if (profiling_) stamps_.record(s, before + std::to_string(n) + after);
  }

  void beginStep() {
    if (view_.ids == nullptr) throw Error("no batch: call setBatch or selectRows first");
    if (pendingCopy_) check(cudaStreamWaitEvent(stream_, pendingCopy_, 0), "wait for the batch copy");
    marks_.used = 0;
    stamps_.used = 0;
    mark("start");
  }

  /** Enqueues the step's read-backs; `profiled` when every phase event was recorded (training steps). */
  void endStep(bool profiled = false) {
    mark("statistics and loss scale");
    if (profiling_ && profiled) profiledStep_ = true;
    check(cudaMemcpyAsync(&host_->loss, lossValue_, sizeof(float), cudaMemcpyDeviceToHost, stream_), "copy the loss from the GPU");
    check(cudaMemcpyAsync(&host_->bad, badId_, sizeof(BadId), cudaMemcpyDeviceToHost, stream_), "copy the id check from the GPU");
    if (plan_.precision == Precision::Fp16) check(cudaMemcpyAsync(&host_->skipped, skipped_, sizeof(int), cudaMemcpyDeviceToHost, stream_), "copy the skip count");
    if (currentStaging_ >= 0) check(cudaEventRecord(staging_[currentStaging_].consumed, stream_), "record batch use");
    check(cudaEventRecord(stepDone_, stream_), "record the step's end");
  }

  void resetStepFlags() {
    if (plan_.precision == Precision::Fp16) check(cudaMemsetAsync(overflow_, 0, sizeof(int), stream_), "reset the overflow flag");
  }

  void uploadMasks(const std::vector<const float*>* masks) {
    if (!masks) return;
    size_t hidden = 0;
    for (size_t i = 0; i < plan_.layers.size(); i++) {
      if (!plan_.layers[i].hidden) continue;
      if (hidden >= masks->size()) throw Error("dropout masks: one per hidden layer is needed");
      if (!masks_[i]) masks_[i] = memory_.make<float>("activations:dropout masks", (size_t)plan_.batchCapacity * plan_.layers[i].units);
      check(cudaMemcpyAsync(masks_[i], (*masks)[hidden++], (size_t)view_.size * plan_.layers[i].units * sizeof(float), cudaMemcpyHostToDevice, stream_),
            "copy dropout masks to the GPU");
    }
  }

  HiddenLayerArgs layerArgs(size_t i, long long step, bool useMasks) const {
    return {view_.size, plan_.layers[i].units, static_cast<int>(i), plan_.layers[i].activation, plan_.dropout, useMasks ? masks_[i] : nullptr, plan_.seed, step,
            rowOffset_};
  }

  bool fastLayer(size_t i) const {
    const Layer& l = plan_.layers[i];
    return l.activation == Activation::Relu && plan_.dropout == 0.0f && l.gamma < 0;
  }

  /**
   * The forward product of hidden layer `l` over `rows` rows, Y = X W + b (D = W . X in cuBLASLt's
   * terms, see the top of this file); the caller sets the input, output and epilogue.
   */
  GemmCall forwardProduct(const Layer& l, long long rows) const {
    GemmCall g;
    g.m = l.units;
    g.n = rows;
    g.k = l.inputs;
    g.a = weightFor(l.kernel);
    g.lda = l.units;
    g.ldb = l.inputs;
    g.ldd = l.units;
    g.abType = g.dType = dataType<T>();
    g.bias = weightFor(l.bias);
    g.biasType = dataType<T>();
    g.what = "hidden layer forward";
    g.tune = rows == plan_.batchCapacity;
    return g;
  }

  /** Layer `l`'s input gradient, dX = dP W^T (D = W^T . dP); the caller sets dP, dX and the epilogue. */
  GemmCall inputGradientProduct(const Layer& l, long long rows) const {
    GemmCall g;
    g.transA = true;
    g.m = l.inputs;
    g.n = rows;
    g.k = l.units;
    g.a = weightFor(l.kernel);
    g.lda = l.units;
    g.ldb = l.units;
    g.ldd = l.inputs;
    g.abType = g.dType = dataType<T>();
    g.what = "hidden layer input gradient";
    g.tune = rows == plan_.batchCapacity;
    return g;
  }

  const T* weightFor(int p) const { return lowPrecision() ? static_cast<const T*>(lowCopy_.at(p)) : reinterpret_cast<const T*>(buffers_[p].value); }
  static constexpr bool lowPrecision() { return !std::is_same<T, float>::value; }

  void forward(bool training, long long step, const std::vector<const float*>* masks) {
    const int size = view_.size;
    if (productsPending_) {
      check(cudaStreamWaitEvent(stream_, productsDone_, 0), "wait for the last step's kernel gradients");
      productsPending_ = false;
    }
    if (hasWide_)
      launchWideForward(stream_, view_, wideLookupsDev_, (int)plan_.wideLookups.size(), plan_.wideBias >= 0 ? buffers_[plan_.wideBias].value : nullptr,
                        plan_.wideNumeric >= 0 ? buffers_[plan_.wideNumeric].value : nullptr, wideNumericColumnsDev_, (int)plan_.wideNumericColumns.size(),
                        wideLogit_, badId_);
    mark("wide lookups");
    const T* input = nullptr;
    int width = 0;
    if (!plan_.layers.empty()) {
      launchEmbeddingForward<T>(stream_, view_, deepLookupsDev_, deepLookupCount_, x0_, plan_.deepInputWidth, badId_);
      launchDenseInputs<T>(stream_, view_, denseJobsDev_, denseJobCount_, x0_, plan_.deepInputWidth, badId_);
      settleKernels();
      if (lowPrecision())
        for (auto& [p, low] : lowCopy_) launchCast<T>(stream_, buffers_[p].value, static_cast<T*>(low), plan_.parameters[p].size);
      mark("deep inputs");
      input = x0_;
      width = plan_.deepInputWidth;
      for (size_t i = 0; i + 1 < plan_.layers.size(); i++) {
        const Layer& l = plan_.layers[i];
        GemmCall g = forwardProduct(l, size);
        g.b = input;
        if (fastLayer(i)) {
          g.d = out_[i];
          g.epilogue = lt::CUBLASLT_EPILOGUE_RELU_BIAS;
          if (aux_[i]) {
            // Keeps the ReLU mask as bits, so that the backward product applies it (DRELU_BGRAD).
            g.epilogue = lt::CUBLASLT_EPILOGUE_RELU_AUX_BIAS;
            g.aux = aux_[i];
            g.auxLd = l.units;
          }
          gemm_->run(g, stream_);
        } else {
          g.d = pre_[i];
          g.epilogue = lt::CUBLASLT_EPILOGUE_BIAS;
          gemm_->run(g, stream_);
          const HiddenLayerArgs a = layerArgs(i, step, masks != nullptr);
          T* activated = l.gamma >= 0 ? y_[i] : out_[i];
          launchActivationForward<T>(stream_, a, pre_[i], activated, training);
          if (l.gamma >= 0) {
            const float* mean = training ? batchMean_[i] : buffers_[l.movingMean].value;
            const float* variance = training ? batchVariance_[i] : buffers_[l.movingVariance].value;
            if (training) launchMoments<T>(stream_, y_[i], size, l.units, partial_, batchMean_[i], batchVariance_[i]);
            launchBatchNormForward<T>(stream_, y_[i], size, l.units, buffers_[l.gamma].value, buffers_[l.beta].value, mean, variance, plan_.batchNormEpsilon,
                                      out_[i]);
          }
        }
        input = out_[i];
        width = l.units;
        mark("layer ", i, " forward");
      }
    }
    const Layer* logit = plan_.layers.empty() ? nullptr : &plan_.layers.back();
    launchLogitLoss<T>(stream_, view_, input, width, logit ? buffers_[logit->kernel].value : nullptr, logit ? buffers_[logit->bias].value : nullptr,
                       hasWide_ ? wideLogit_ : nullptr, training, plan_.weighted, plan_.precision == Precision::Fp16 ? lossScale_ : nullptr, z_, rowLoss_, dz_,
                       static_cast<float>(lossDivisor()));
    if (training) launchSum(stream_, rowLoss_, size, lossValue_, size > 0 ? 1.0f / static_cast<float>(lossDivisor()) : 0.0f);
    mark("logit and loss");
  }

  /**
   * The backward pass. One GPU: each layer's kernel-gradient product runs beside the chain as soon
   * as its dPre is made (productBeside), or inline. In a data-parallel step (`exchanging`) with row
   * records, the input-gradient chain runs first, down to the table gradients, so that the tables
   * cross the ranks (communication stream) while the kernel-gradient products run after it (compute
   * stream); with the peers' rows the products run beside the chain, as on one GPU (dpBeside_).
   * Either way each kernel gradient is all-reduced as soon as it is made. With `sideScalars` each
   * optimizer runs once its sums are in (dense ones on the communication stream, the tables' on the
   * side stream) and the compute stream waits for the tables and the loss only
   * (the kernels: settleKernels); without, it waits for every exchange.
   */
  void backward(long long step, const std::vector<const float*>* masks, bool exchanging, const StepScalars* sideScalars) {
    const int size = view_.size;
    const int chunks = reductionChunks(size);
    // Planned at the first single-GPU backward pass, so that the dataset and the other buffers
    // made after build have their memory first (without enough left, the products stay inline).
    if (!exchanging && !besidePlanned_) {
      besidePlanned_ = true;
      planProductsBeside();
    }
    // One GPU: each kernel-gradient product on its own stream as soon as its dPre is made, beside
    // the rest of the chain. Data-parallel steps keep them for after the chain instead, beside the
    // tables' exchange, which otherwise has nothing to overlap (measured: docs/distributed.md).
    // With the peers' rows (little left to overlap after the chain) they go beside the chain in
    // data-parallel steps too (WNDC_CUDA_DP_BESIDE=0: after it).
    const bool beside = productStream_ != nullptr && (!exchanging || dpBeside_) && !layerDPre_.empty();
    // Each layer keeps its own dPre (the products run after the chain, or beside it).
    const bool perLayer = (exchanging || beside) && !layerDPre_.empty();
    // Data parallelism without the products beside: they run after the chain, beside the tables' exchange.
    const bool deferKernels = exchanging && perLayer && !beside;
    // The last data-parallel step's rows read from every rank are cleared (clearPeerRows) before
    // this pass adds into the accumulators.
    if (peerRowsPending_) {
      check(cudaStreamWaitEvent(stream_, peerRowsCleared_, 0), "wait for the tables' rows to be cleared");
      peerRowsPending_ = false;
    }
    if (hasWide_) {
      if (plan_.wideBias >= 0) launchSum(stream_, dz_, size, buffers_[plan_.wideBias].grad, 1.0f);
      if (plan_.wideNumeric >= 0) {
        launchWideNumericGrad(stream_, view_, wideNumericColumnsDev_, (int)plan_.wideNumericColumns.size(), dz_, partial_);
        launchFinishColumns(stream_, partial_, chunks, (int)plan_.wideNumericColumns.size(), buffers_[plan_.wideNumeric].grad, 1.0f, false);
      }
      launchWideBackward(stream_, view_, wideLookupsDev_, (int)plan_.wideLookups.size(), dz_, keyGrad_, touched_);
      mark("wide gradients");
    }
    if (plan_.layers.empty()) {
      if (exchanging) {
        pushOwnedRows();
        onComm([&] { countTouchedRows(); }, false);
        exchangeTables(sideScalars);
        settleOwnedRows(sideScalars);
        joinComm();
        clearPeerRows();
      }
      return;
    }
    const size_t last = plan_.layers.size() - 1;
    const Layer& logit = plan_.layers[last];
    const T* logitInput = last == 0 ? x0_ : out_[last - 1];
    const int logitWidth = logit.inputs;
    launchWeightedColumns<T>(stream_, logitInput, size, logitWidth, dz_, partial_);
    launchFinishColumns(stream_, partial_, chunks, logitWidth, buffers_[logit.kernel].grad, 1.0f, false);
    launchSum(stream_, dz_, size, buffers_[logit.bias].grad, 1.0f);
    const float* logitKernel = buffers_[logit.kernel].value;
    mark("logit gradients");

    // dOut of the layer being processed lives in dOut_[flip].
    int flip = 0;
    if (last == 0) {
      if (deepLookupCount_ > 0) launchOuterProduct<T>(stream_, dz_, logitKernel, size, plan_.deepInputWidth, dOut_[0]);
    }
    // dPre of layer i: one of two buffers used in turn, or (deferred kernel gradients) its own.
    auto dPre = [&](size_t i, int which) { return perLayer ? layerDPre_[i] : dPre_[which]; };
    // With fused epilogues the input-gradient product of layer i + 1 already applied layer i's
    // ReLU mask and summed its bias gradient (DRELU_BGRAD): `fusedPre` says dPre(i) holds it.
    int cur = 0;
    bool fusedPre = false;
    for (size_t ii = last; ii-- > 0;) {
      const size_t i = ii;
      const Layer& l = plan_.layers[i];
      const bool fast = fastLayer(i);
      const bool fromLogit = i + 1 == last;
      if (!fusedPre) {
        const HiddenLayerArgs a = layerArgs(i, step, masks != nullptr);
        if (fromLogit && !fast) launchOuterProduct<T>(stream_, dz_, logitKernel, size, l.units, dOut_[flip]);
        if (l.gamma >= 0)
          launchBatchNormBackward<T>(stream_, y_[i], dOut_[flip], size, l.units, buffers_[l.gamma].value, batchMean_[i], batchVariance_[i],
                                     plan_.batchNormEpsilon, partial_, buffers_[l.gamma].grad, buffers_[l.beta].grad);
        const int used = launchActivationBackward<T>(stream_, a, dOut_[flip], dz_, fromLogit && fast ? logitKernel : nullptr, fast ? nullptr : pre_[i],
                                                     out_[i], dPre(i, cur), partial_);
        launchFinishColumns(stream_, partial_, used, l.units, buffers_[l.bias].grad, 1.0f, false);
        mark("layer ", i, " activation gradient");
      } else if (biasGradScratch_) {
        launchCastToFloat<T>(stream_, static_cast<const T*>(biasGradScratch_), buffers_[l.bias].grad, l.units);
      }
      if (beside) {
        productBeside(i);
      } else if (!deferKernels) {
        kernelGradient(i, dPre(i, cur), 0, stream_);
        mark("layer ", i, " kernel gradient");
      }
      fusedPre = false;
      if (i > 0 || deepLookupCount_ > 0) {
        GemmCall gx = inputGradientProduct(l, size);
        gx.b = dPre(i, cur);
        if (i > 0 && aux_[i - 1]) {
          const Layer& below = plan_.layers[i - 1];
          gx.epilogue = lt::CUBLASLT_EPILOGUE_DRELU_BGRAD;
          gx.aux = aux_[i - 1];
          gx.auxLd = below.units;
          gx.d = dPre(i - 1, cur ^ 1);
          gx.biasType = biasGradType_;
          gx.bias = biasGradScratch_ ? biasGradScratch_ : static_cast<void*>(buffers_[below.bias].grad);
          gemm_->run(gx, stream_);
          cur ^= 1;
          fusedPre = true;
        } else {
          gx.d = dOut_[flip ^ 1];
          gemm_->run(gx, stream_);
          flip ^= 1;
        }
        mark("layer ", i, fusedPre ? " input gradient (fused ReLU and bias gradient)" : " input gradient");
      }
    }
    if (deepLookupCount_ > 0) {
      launchEmbeddingBackward<T>(stream_, view_, deepLookupsDev_, deepLookupCount_, dOut_[flip], plan_.deepInputWidth, keyGrad_, touched_);
      mark("embedding gradients");
    }
    if (beside && !exchanging) {
      // productsDone_ follows the last product (productBeside); the dense optimizers read them all.
      check(cudaStreamWaitEvent(stream_, productsDone_, 0), "wait for the kernel gradients");
      productsPending_ = false;
      mark("kernel gradients (beside the chain)");
    }
    if (!exchanging) return;
    // Every gradient but the hidden layers' kernels is final here (see the arena's layout in build),
    // and every touched row is flagged: with records the communication stream counts them per table,
    // while the compute stream goes on with the kernel gradients (queued before the host waits for
    // the counts); with the peers' rows the products are already on their own stream.
    stamp(stream_, "compute: backward chain done");
    pushOwnedRows();
    onComm([&] { countTouchedRows(); }, false);
    for (size_t i = 0; deferKernels && i < last; i++) {
      // Layer 0's kernel (the widest input) first: the last one's sum is the part left exposed.
      kernelGradient(i, layerDPre_[i], commGemmSms_, stream_);
      check(cudaEventRecord(kernelDone_[i], stream_), "record a kernel gradient");
      stamp(stream_, "compute: kernel gradient ", i, " made");
      mark("layer ", i, " kernel gradient (tables crossing the ranks meanwhile)");
    }
    exchangeTables(sideScalars);
    settleOwnedRows(sideScalars);
    for (size_t k = 0; perLayer && k < last; k++) {
      // In the order they are made: beside the chain the top layer first, after it layer 0 first.
      const size_t i = beside ? last - 1 - k : k;
      const int p = plan_.layers[i].kernel;
      check(cudaStreamWaitEvent(commStream_, kernelDone_[i], 0), "order the communication stream");
      world_->allReduceSum(buffers_[p].grad, plan_.parameters[p].size, commStream_, plan_.parameters[p].name.c_str());
      if (sideScalars) applyDense(commStream_, p, *sideScalars);
      stamp(commStream_, "comm: kernel ", i, " summed and updated");
    }
    if (!perLayer && denseArenaFloats_ > restFloats_)
      onComm(
          [&] {
            world_->allReduceSum(denseArena_ + restFloats_, denseArenaFloats_ - restFloats_, commStream_, "the kernel gradients");
            for (size_t i = 0; sideScalars && i < last; i++) applyDense(commStream_, plan_.layers[i].kernel, *sideScalars);
          },
          false);
    commMark(2);
    if (sideScalars) {
      // The step ends once the tables, the loss and the other dense parameters are done; the
      // kernels' last sums and updates run on beside the next step's lookups, which do not read
      // them (its forward pass waits for them before the tower: settleKernels).
      check(cudaEventRecord(kernelsSummed_, commStream_), "record the kernels' updates");
      kernelsPending_ = true;
      clearPeerRows();
      check(cudaStreamWaitEvent(stream_, tablesDone_, 0), "wait for the tables' exchange");
      stamp(stream_, "compute: tables exchanged");
    } else {
      joinComm();
    }
    mark("exchange over the ranks");
  }

  /**
   * Waits for `work` (an event or a stream) to be done. In a data-parallel job with a timeout, that
   * work may wait on NCCL for the other ranks: after rankTimeout_ seconds the communicator is
   * aborted (its kernels end) and an Error says which rank waited for what. Polls, yielding
   * between polls, as cudaEventSynchronize does by default (no latency is added to the step).
   */
  template <typename Work>
  void awaitRanks(Work work, const char* what) {
    auto query = [&] {
      if constexpr (std::is_same<Work, cudaEvent_t>::value) return cudaEventQuery(work);
      else return cudaStreamQuery(work);
    };
    if (!world_ || rankTimeout_ <= 0) {
      if constexpr (std::is_same<Work, cudaEvent_t>::value) check(cudaEventSynchronize(work), what);
      else check(cudaStreamSynchronize(work), what);
      return;
    }
    if (world_->aborted()) throw Error(std::string(what) + ": this rank gave up its data-parallel job (its NCCL communicator was aborted after an error or a timeout)");
    const auto start = std::chrono::steady_clock::now();
    double nextErrorCheck = 1e-3;
    for (;;) {
      const cudaError_t status = query();
      if (status == cudaSuccess) return;
      if (status != cudaErrorNotReady) check(status, what);
      // Not ready is no error: keep it from being taken for one by the next launch check.
      if (cudaPeekAtLastError() == cudaErrorNotReady) (void)cudaGetLastError();
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      // NCCL may see a peer go (its connection lost) before the timeout: stop then, with its reason
      // (asked every millisecond).
      std::string failed;
      if (waited > nextErrorCheck) {
        failed = world_->asyncError();
        nextErrorCheck = waited + 1e-3;
      }
      if (!failed.empty()) {
        const std::string who = "rank " + std::to_string(world_->rank()) + " of " + std::to_string(world_->size());
        world_->abort();
        throw Error(who + ", waiting for " + what + ": NCCL failed (" + failed + "): another rank died or its connection was lost. This rank's NCCL communicator was aborted");
      }
      if (waited > rankTimeout_) {
        const int rank = world_->rank(), size = world_->size();
        world_->abort();
        const std::string others = size == 2 ? "the other rank (rank " + std::to_string(1 - rank) + ")" : "one of the other " + std::to_string(size - 1) + " ranks";
        throw Error("rank " + std::to_string(rank) + " of " + std::to_string(size) + " waited " + std::to_string(static_cast<long long>(rankTimeout_)) + " s for " + what +
                    ": " + others + " died or hangs. This rank's NCCL communicator was aborted; the log of the rank that stopped says why (--rank-timeout sets the wait)");
      }
      std::this_thread::yield();
    }
  }

  /** Makes the compute stream wait for the kernels' sums and updates of the last data-parallel step, if any are in flight. */
  void settleKernels() {
    if (!kernelsPending_) return;
    check(cudaStreamWaitEvent(stream_, kernelsSummed_, 0), "wait for the kernels' updates");
    kernelsPending_ = false;
  }

  /** Layer `i`'s kernel gradient, dW = X^T dP, into its float gradient, planned for `smCount` SMs (0: all). */
  void kernelGradient(size_t i, const T* dPreLayer, int smCount, cudaStream_t s) {
    const Layer& l = plan_.layers[i];
    GemmCall gw;
    gw.transB = true;
    gw.m = l.units;
    gw.n = l.inputs;
    gw.k = view_.size;
    gw.a = dPreLayer;
    gw.lda = l.units;
    gw.b = i == 0 ? x0_ : out_[i - 1];
    gw.ldb = l.inputs;
    gw.d = buffers_[l.kernel].grad;
    gw.ldd = l.units;
    gw.abType = dataType<T>();
    gw.dType = CUDA_R_32F;
    gw.what = "hidden layer kernel gradient";
    gw.tune = view_.size == plan_.batchCapacity;
    gw.smCount = smCount;
    // The products' stream has its own cuBLASLt workspace: split-K products keep partial sums there.
    (s == productStream_ && productGemm_ ? *productGemm_ : *gemm_).run(gw, s);
  }

  /**
   * Runs `enqueue` (NCCL calls and their kernels) on the communication stream after everything
   * queued so far on the compute stream; with `join`, the compute stream waits for it.
   */
  template <typename F>
  void onComm(F enqueue, bool join = true) {
    check(cudaEventRecord(computeReady_, stream_), "record for the communication stream");
    check(cudaStreamWaitEvent(commStream_, computeReady_, 0), "order the communication stream");
    enqueue();
    if (join) joinComm();
  }

  void joinComm() {
    check(cudaEventRecord(commDone_, commStream_), "record on the communication stream");
    check(cudaStreamWaitEvent(stream_, commDone_, 0), "wait for the communication stream");
  }

  /**
   * Pushed rows (PeerRows::inboxAt), on the compute stream once the backward pass has flagged every
   * row: the rows this rank flagged that other ranks own go to their owners' inboxes. The loss's
   * all-reduce, queued after it, tells every rank that the others' rows have arrived.
   */
  void pushOwnedRows() {
    if (peers_.inboxAt < 0) return;
    launchPushRows(stream_, peers_, (int)tables_.size(), mostPeerRows_, keyGrad_, touched_);
    stamp(stream_, "compute: rows pushed to their owners");
  }

  /**
   * On the communication stream (ordered after the backward pass's table gradients, which flag the
   * touched rows): lists each candidate table's touched rows and all-gathers their counts, which
   * reach the host at countsReady_.
   */
  void countTouchedRows() {
    if (candidates_.empty()) return;
    check(cudaMemsetAsync(counts_, 0, candidates_.size() * sizeof(int), commStream_), "reset the touched-row counts");
    launchListFlagged(commStream_, candidateRanges_, (int)candidates_.size(), mostCandidateRows_);
    stamp(commStream_, "comm: touched rows listed");
    world_->allGather(counts_, allCounts_, candidates_.size() * sizeof(int), commStream_, "the touched-row counts");
    check(cudaMemcpyAsync(hostCounts_, allCounts_, candidates_.size() * world_->size() * sizeof(int), cudaMemcpyDeviceToHost, commStream_),
          "copy the touched-row counts");
    check(cudaEventRecord(countsReady_, commStream_), "record the touched-row counts");
    stamp(commStream_, "comm: counts gathered");
  }

  /**
   * Sums over the ranks, on the communication stream (no join): the loss, every dense gradient but
   * the hidden layers' kernels (the front of the arena), and each table's gradients: small tables
   * as a whole (sum, and the union of touched rows), large ones as their touched rows (all-gathered
   * records, added into the accumulator in rank order), or, with the peers' rows, not at all (every
   * table): once the loss is summed (every rank's accumulators are final) the side stream lists the
   * rows any rank flagged and its optimizer reads them from every rank. With `sideScalars`, the side
   * stream lists the touched rows and runs the tables' optimizers.
   */
  void exchangeTables(const StepScalars* sideScalars) {
    const int size = world_->size();
    // Two ranks keep their own rows and add the other's (see kernels_world.cu).
    const bool pairwise = size == 2;
    // The counts were all-gathered while the kernel gradients were being queued; the host waits
    // for them here (the GPU does not: its compute stream has work queued). The communication
    // stream is already ordered after the table gradients (countTouchedRows).
    if (!candidates_.empty()) awaitRanks(countsReady_, "count the touched rows on every rank");
    commMark(0);
    stamp(commStream_, candidates_.empty() ? "comm: exchange queued" : "comm: exchange queued (the host had the counts)");
    world_->allReduceSum(lossValue_, 1, commStream_, "the loss");
    // The peers' rows are summed by the tables' optimizer itself: no step runs without it.
    if (peers_.size > 0 && !sideScalars) throw Error("a data-parallel step with the peers' rows but without the tables' optimizers");
    if (peers_.size > 0) {
      // Past the loss's all-reduce every rank's backward chain is done, so every accumulator is
      // final: the tables read from every rank are updated now, beside the other sums.
      check(cudaEventRecord(peersReady_, commStream_), "record the ranks' gradients");
      check(cudaStreamWaitEvent(sideStream_, peersReady_, 0), "order the side stream");
      check(cudaMemsetAsync(touchedCount_, 0, sizeof(int), sideStream_), "reset the touched-row count");
      if (peers_.inboxAt >= 0)
        launchListOwned(sideStream_, peers_, (int)tables_.size(), mostPeerRows_, touchedList_, touchedCount_);
      else
        launchListAnyRank(sideStream_, peers_, peerRanges_, peerRangeCount_, mostPeerRows_, touchedList_, touchedCount_);
      stamp(sideStream_, "side: rows read from every rank listed");
      sparseApplyRows(sideStream_, *sideScalars, true, touchedList_, touchedCount_, peers_);
      stamp(sideStream_, "side: tables read from every rank updated");
    }
    if (restFloats_ > 0) world_->allReduceSum(denseArena_, restFloats_, commStream_, "the dense gradients");
    for (size_t c = 0; c < candidates_.size(); c++) {
      const int p = tables_[candidates_[c]];
      const Parameter& spec = plan_.parameters[p];
      TableExchange& x = exchange_[candidates_[c]];
      int most = 0;
      for (int r = 0; r < size; r++) most = std::max(most, hostCounts_[r * candidates_.size() + c]);
      const double rowBytes = (double)size * recordWords(most, spec.dim, x.bf16) * 4;
      const double wholeBytes = (double)spec.size * 4 + spec.rows;
      x.rows = rowBytes < wholeBytes;
      x.used = most;
      if (x.rows)
        launchPackRows(commStream_, x.list, counts_ + c, most, keyGrad_ + buffers_[p].gradBase, spec.dim, x.send, pairwise ? PackMode::Keep : PackMode::Clear,
                       x.bf16);
    }
    stamp(commStream_, "comm: dense sums and records packed");
    world_->groupStart();
    for (size_t t = 0; t < tables_.size(); t++) {
      const int p = tables_[t];
      const Parameter& spec = plan_.parameters[p];
      const TableExchange& x = exchange_[t];
      if (x.peer) continue;  // read from every rank's accumulator by the tables' optimizer
      if (x.rows) {
        world_->allGather(x.send, x.receive, recordWords(x.used, spec.dim, x.bf16) * sizeof(int), commStream_, spec.name.c_str());
      } else {
        world_->allReduceSum(keyGrad_ + buffers_[p].gradBase, spec.size, commStream_, spec.name.c_str());
        world_->allReduceMax(touched_ + buffers_[p].rowBase, spec.rows, nccl::ncclUint8, commStream_, spec.name.c_str());
      }
    }
    world_->groupEnd();
    stamp(commStream_, "comm: records gathered");
    for (size_t t = 0; t < tables_.size(); t++) {
      const int p = tables_[t];
      const Parameter& spec = plan_.parameters[p];
      const TableExchange& x = exchange_[t];
      if (x.rows)
        launchUnpackRecords(commStream_, x.receive, recordWords(x.used, spec.dim, x.bf16), size, x.used, keyGrad_ + buffers_[p].gradBase, spec.dim,
                            touched_ + buffers_[p].rowBase, pairwise ? world_->rank() : -1, x.bf16);
    }
    commMark(1);
    stamp(commStream_, "comm: records added");
    // Every dense gradient but the hidden layers' kernels is summed: their optimizers.
    for (size_t p = 0; sideScalars && p < plan_.parameters.size(); p++)
      if (plan_.parameters[p].kind == ParameterKind::Dense && buffers_[p].grad < denseArena_ + restFloats_) applyDense(commStream_, p, *sideScalars);
    check(cudaEventRecord(tablesDone_, commStream_), "record the tables' exchange");
    stamp(commStream_, "comm: dense optimizers");
    if (!sideScalars || tables_.empty()) return;
    // With the peers' rows every table is already queued on the side stream (above).
    if (peers_.size == 0) {
      check(cudaStreamWaitEvent(sideStream_, tablesDone_, 0), "order the side stream");
      listTouched(sideStream_);
      stamp(sideStream_, "side: touched rows listed");
      sparseApply(sideStream_, *sideScalars, true);
    }
    stamp(sideStream_, "side: tables updated");
    check(cudaEventRecord(sideDone_, sideStream_), "record the tables' optimizers");
  }

  long long lossDivisor() const { return globalRows_ > 0 ? globalRows_ : view_.size; }

  void joinWorld(const unsigned char* id, int rank, int size, double timeoutSeconds) override {
    if (world_) throw Error("the model is already part of a data-parallel job");
    rankTimeout_ = timeoutSeconds > 0 ? timeoutSeconds : 0;
    nccl::ncclUniqueId unique{};
    std::memcpy(&unique, id, sizeof unique);
    check(cudaSetDevice(device_), "cudaSetDevice");
    world_.reset(new World(unique, rank, size));
    try {
      joinWorldBuffers(size);
    } catch (...) {
      // Half a world is none: later steps train alone, as before the call. Abort first: the other
      // ranks may be in a collective call this rank will not make (and a registered PeerBuffer is
      // then left to the driver, not deregistered alone).
      world_->abort();
      try {
        dropPeerRows();
      } catch (...) {
      }
      world_.reset();
      if (!productStream_) {
        releaseLayerGradients();
      }
      throw;
    }
  }

  void joinWorldBuffers(int size) {
    // The communication stream outranks the compute stream: NCCL's kernels, and the packing and
    // unpacking around them, take SMs as the tower's products free them, instead of queuing behind
    // every block of those products. The side stream (the tables' optimizers) ranks below both and
    // fills what is left (on two H200s: 24.45 M examples/s, against 24.34 M with it level with
    // the compute stream).
    int least = 0, greatest = 0;
    check(cudaDeviceGetStreamPriorityRange(&least, &greatest), "cudaDeviceGetStreamPriorityRange");
    check(cudaStreamCreateWithPriority(&commStream_, cudaStreamNonBlocking, greatest), "cudaStreamCreate (communication)");
    check(cudaEventCreateWithFlags(&computeReady_, cudaEventDisableTiming), "cudaEventCreate");
    check(cudaEventCreateWithFlags(&commDone_, cudaEventDisableTiming), "cudaEventCreate");
    check(cudaEventCreateWithFlags(&countsReady_, cudaEventDisableTiming), "cudaEventCreate");
    check(cudaStreamCreateWithPriority(&sideStream_, cudaStreamNonBlocking, least), "cudaStreamCreate (side)");
    check(cudaEventCreateWithFlags(&tablesDone_, cudaEventDisableTiming), "cudaEventCreate");
    check(cudaEventCreateWithFlags(&sideDone_, cudaEventDisableTiming), "cudaEventCreate");
    check(cudaEventCreateWithFlags(&kernelsSummed_, cudaEventDisableTiming), "cudaEventCreate");
    // With records, the kernel-gradient products run beside the exchange: planned for the SMs it leaves them
    // (WNDC_CUDA_COMM_SMS, default 32, kept for NCCL, the packing kernels and the optimizers; 0: plan
    // for all). On two H200s 16 to 32 did best; 0 left 0.35 ms of exchange after the products, 48
    // slowed the products more than it sped the exchange.
    int sms = 0;
    check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device_), "cudaDeviceGetAttribute");
    const char* reserveText = std::getenv("WNDC_CUDA_COMM_SMS");
    const int reserve = reserveText ? std::atoi(reserveText) : 32;
    commGemmSms_ = reserve > 0 && reserve < sms ? sms - reserve : 0;
    allocateLayerGradients("data parallelism:layer gradients");
    planExchange(size);
    // With the peers' rows, the kernel-gradient products run beside the backward chain, as on one
    // GPU: after the chain only the tables' optimizers and the sums are left (on two H100s, 22.79 M
    // examples/s against 22.70 M with the products after the chain). WNDC_CUDA_DP_BESIDE=0: after.
    const char* besideText = std::getenv("WNDC_CUDA_DP_BESIDE");
    const bool wantBeside = !(besideText && std::string(besideText) == "0") && peers_.size > 0;
    if (wantBeside && !besidePlanned_) {
      besidePlanned_ = true;
      planProductsBeside();
    }
    // The kernels' all-reduces follow the products' order, which must be the same on every rank.
    dpBeside_ = everyRank(wantBeside && productStream_ != nullptr, "whether every rank runs the products beside the chain");
  }

  /**
   * Per table, how its gradients are summed over `size` ranks. Where some table is large (256 KiB
   * or more) and every rank reaches every other's memory, every table is read by each rank's tables'
   * optimizer from the others' accumulators (planPeerRows: no collective moves them). Otherwise
   * small tables go whole (an all-reduce of rows x dim floats) and large ones, each step, as the
   * cheaper of the whole accumulator and the touched rows (an all-gather of up to `capacity` rows
   * per rank, where capacity = the batch's reads of the table, at most its rows).
   */
  void planExchange(int size) {
    exchange_.assign(tables_.size(), TableExchange{});
    candidates_.clear();
    // WNDC_CUDA_EXCHANGE: unset, the peers' rows where every rank can read every other's memory,
    // else row records; `peer` insists on the peers' rows; `records` row records (bfloat16 with
    // --amp); `fp32` row records of float32.
    const char* exchangeText = std::getenv("WNDC_CUDA_EXCHANGE");
    const std::string exchange = exchangeText ? exchangeText : "";
    if (exchange != "" && exchange != "peer" && exchange != "records" && exchange != "fp32")
      throw Error("WNDC_CUDA_EXCHANGE=" + exchange + ": expected peer (read the tables' rows from the other GPUs), records (all-gather the large ones' rows) or fp32 " +
                  "(all-gather them as float32), or unset it");
    const bool bf16Records = lowPrecision() && exchange != "fp32";
    std::vector<long long> reads(plan_.parameters.size(), 0);
    for (const Lookup& l : plan_.wideLookups) reads[l.table] += l.width;
    for (const Piece& piece : plan_.pieces)
      if (piece.kind == Piece::Embedding) reads[piece.lookup.table] += piece.lookup.width;
    // A rank touches at most this many rows of a table a step: the batch's reads of it, at most its rows.
    auto capacityOf = [&](int p) { return std::min<long long>(plan_.parameters[p].rows, reads[p] * plan_.batchCapacity); };
    auto large = [&](int p) { return (double)plan_.parameters[p].size * 4 >= kRowExchangeMinBytes && capacityOf(p) > 0; };
    bool anyLarge = false;
    for (int p : tables_) anyLarge = anyLarge || large(p);
    // With the peers' rows the small tables are read from the peers too: no NCCL call per table
    // (an all-reduce of its gradients and one of its flags), and one optimizer pass over every table
    // (two H200s: 24.76 M examples/s against 24.65 M with the small tables summed whole).
    // Unset, only where some table is large (small ones alone gain little over one all-reduce);
    // `peer` insists either way.
    const bool peer = ((exchange == "" && anyLarge) || (exchange == "peer" && !tables_.empty())) && planPeerRows(size, exchange == "peer");
    for (size_t t = 0; t < tables_.size(); t++) {
      const int p = tables_[t];
      const Parameter& spec = plan_.parameters[p];
      const long long capacity = capacityOf(p);
      TableExchange& x = exchange_[t];
      x.large = large(p);
      if (peer) {
        x.peer = true;
        continue;
      }
      if (!x.large) continue;
      x.rows = true;
      x.bf16 = bf16Records && recordVectorised(keyGrad_ + buffers_[p].gradBase, spec.dim);
      const long long words = recordWords(capacity, spec.dim, x.bf16);
      x.list = memory_.make<int>("data parallelism:row lists", capacity > 0 ? spec.rows : 1);
      x.send = memory_.make<int>("data parallelism:row records", words);
      x.receive = memory_.make<int>("data parallelism:row records", words * size);
      candidates_.push_back(t);
    }
    counts_ = memory_.make<int>("data parallelism:row lists", std::max<size_t>(1, candidates_.size()));
    std::vector<FlagRange> ranges;
    mostCandidateRows_ = 0;
    for (size_t c = 0; c < candidates_.size(); c++) {
      const int p = tables_[candidates_[c]];
      ranges.push_back({touched_ + buffers_[p].rowBase, plan_.parameters[p].rows, exchange_[candidates_[c]].list, counts_ + c});
      mostCandidateRows_ = std::max<long long>(mostCandidateRows_, plan_.parameters[p].rows);
    }
    candidateRanges_ = upload("data parallelism:row lists", ranges);
    allTouchedRange_ = upload("data parallelism:row lists", std::vector<FlagRange>{{touched_, totalRows_, touchedList_, touchedCount_}});
    allCounts_ = memory_.make<int>("data parallelism:row lists", std::max<size_t>(1, candidates_.size() * size));
    check(cudaHostAlloc(reinterpret_cast<void**>(&hostCounts_), std::max<size_t>(1, candidates_.size() * size) * sizeof(int), cudaHostAllocDefault),
          "allocate pinned host memory");
  }

  /**
   * Whether every rank says `mine` (a one-word all-reduce on the communication stream, waited for by
   * the host): a choice that changes which collective calls a rank makes must be the same on every rank.
   */
  bool everyRank(bool mine, const char* what) {
    if (!agreement_) agreement_ = memory_.make<int>("data parallelism:agreement", 1);
    if (!agreementHost_)
      check(cudaHostAlloc(reinterpret_cast<void**>(&agreementHost_), sizeof(int), cudaHostAllocDefault), "allocate pinned host memory");
    *agreementHost_ = mine ? 0 : 1;  // a refusal
    check(cudaMemcpyAsync(agreement_, agreementHost_, sizeof(int), cudaMemcpyHostToDevice, commStream_), "copy to the GPU");
    world_->allReduceMax(agreement_, 1, nccl::ncclInt32, commStream_, what);
    check(cudaMemcpyAsync(agreementHost_, agreement_, sizeof(int), cudaMemcpyDeviceToHost, commStream_), "copy from the GPU");
    awaitRanks(commStream_, what);
    return *agreementHost_ == 0;
  }

  /**
   * The peers' rows: every rank's tables' optimizer reads every table's rows straight from the other
   * ranks' accumulators (NCCL symmetric memory over NVLink) and sums them in rank order, where the
   * records' way packs, all-gathers and adds the large tables' rows and all-reduces the small tables. Moves keyGrad_ and
   * touched_ into one PeerBuffer; false (with peerRowsUnavailable_ saying why) when some rank cannot,
   * an Error when `required` (WNDC_CUDA_EXCHANGE=peer). Collective: every rank calls it, and every
   * rank-local step that can fail comes before a collective one, with the ranks agreeing in between.
   */
  bool planPeerRows(int size, bool required) {
    std::string why;
    if (plan_.precision == Precision::Fp16)
      why = "--amp fp16 checks every summed gradient for overflow before any update, and the peers' rows are summed in the update";
    else if (size > 32)
      why = "more than 32 ranks";
    else
      why = World::peerMemoryUnsupported();
    auto refuse = [&](const std::string& reason) {
      if (required) throw Error("WNDC_CUDA_EXCHANGE=peer, but " + reason + ". Unset WNDC_CUDA_EXCHANGE to all-gather the rows instead");
      peerRowsUnavailable_ = reason;
      return false;
    };
    if (!everyRank(why.empty(), "whether every rank can read the others' rows")) return refuse(why.empty() ? "another rank cannot read the others' rows" : why);
    // Where the ranks agree to (the buffers' sizes must match): the rows split between the ranks, the
    // tables' values and slots in symmetric memory too (WNDC_CUDA_SPLIT_ROWS=0: every rank updates
    // every row); the dense gradients, the loss and the barrier word there as well, so that NCCL
    // sums them with its symmetric kernels (WNDC_CUDA_SYMMETRIC_DENSE=0: not).
    const bool splitRows = everyRank(!switchedOff("WNDC_CUDA_SPLIT_ROWS"), "whether every rank splits the tables' rows");
    const bool symmetricDense = everyRank(!switchedOff("WNDC_CUDA_SYMMETRIC_DENSE"), "whether every rank keeps the dense gradients in symmetric memory");
    // With the rows split, the owners read the other ranks' gradients of their rows; with
    // WNDC_CUDA_PUSH_ROWS=1 each rank pushes them into their owners' inboxes instead (writes over
    // NVLink, the owner's pass reading its own memory only). On two H100s pushing made the pass
    // faster (0.16 ms against 0.21) but cost as much itself (0.10 ms): 24.00 M examples/s either way.
    const bool pushRows = splitRows && everyRank(switchedOn("WNDC_CUDA_PUSH_ROWS"), "whether every rank pushes its rows to their owners");
    // Everything of this rank's first: the lists, their device arrays and events.
    std::vector<RowRange> peerRanges;
    for (size_t t = 0; t < tables_.size(); t++) {
      const long long rows = plan_.parameters[tables_[t]].rows;
      peerRanges.push_back({buffers_[tables_[t]].rowBase, rows});
      mostPeerRows_ = std::max(mostPeerRows_, rows);
    }
    // The inboxes' layout (PeerRows::inboxAt): per table, the rows one rank owns, at most
    // ceil(rows / size); each table 256-byte aligned, so that rows of whole float4s stay aligned.
    std::vector<PeerTable> peerTables;
    long long inboxSlice = 0, flagSlice = 0;
    for (int p : tables_) {
      const Parameter& spec = plan_.parameters[p];
      const long long owned = (spec.rows + size - 1) / size;
      peerTables.push_back({buffers_[p].rowBase, spec.rows, buffers_[p].gradBase, inboxSlice, flagSlice, spec.dim});
      inboxSlice += (long long)aligned256((size_t)(owned * spec.dim) * sizeof(float)) / sizeof(float);
      flagSlice += owned;
    }
    flagSlice = (long long)aligned256((size_t)flagSlice);
    const std::string lists = "data parallelism:peers' rows";
    PeerRows peers;
    peers.listRanks = memory_.make<unsigned>(lists, std::max<long long>(1, totalRows_));
    peers.grads = memory_.make<float*>(lists, size);
    peers.touched = memory_.make<unsigned char*>(lists, size);
    peers.size = size;
    peerRanges_ = upload(lists, peerRanges);
    peerRangeCount_ = static_cast<int>(peerRanges.size());
    peerBarrier_ = memory_.make<float>(lists, 1);
    check(cudaMemset(peerBarrier_, 0, sizeof(float)), "clear the barrier word");
    createPeerEvents();
    // Then the symmetric memory: allocated here, agreed on, registered together, agreed on again.
    const size_t gradBytes = aligned256((size_t)keyGradFloats_ * sizeof(float));
    const size_t flagBytes = aligned256((size_t)totalRows_);
    const size_t denseBytes = symmetricDense ? aligned256((size_t)std::max<long long>(1, denseArenaFloats_) * sizeof(float)) : 0;
    // The loss at its start, the barrier word 256 bytes on (each on a line of its own).
    const size_t scalarBytes = symmetricDense ? 512 : 0;
    // The inbox: a slot of rows and one of flags for each other rank. (Should the tables' symmetric
    // memory below not fit, the rows are not split and the inbox goes unused: a rare case, left so.)
    const size_t inboxBytes = pushRows ? (size_t)(size - 1) * (size_t)inboxSlice * sizeof(float) : 0;
    const size_t inboxFlagBytes = pushRows ? (size_t)(size - 1) * (size_t)flagSlice : 0;
    auto buffer =
        std::make_unique<PeerBuffer>(*world_, gradBytes + flagBytes + denseBytes + scalarBytes + inboxBytes + inboxFlagBytes, "the table gradient accumulators");
    if (!everyRank(buffer->problem().empty(), "whether every rank has the symmetric memory")) {
      const std::string problem = buffer->problem();
      buffer.reset();  // not registered: this rank's alone to free
      return refuse(problem.empty() ? "another rank could not allocate the symmetric memory" : problem);
    }
    // The tables' copy (as large as the tables and their slots, beside them until they move): where
    // some rank lacks the memory, every rank keeps its tables and updates every row.
    std::unique_ptr<PeerBuffer> tables = splitRows ? std::make_unique<PeerBuffer>(*world_, tableStateBytes(), "the tables") : nullptr;
    if (tables && !everyRank(tables->problem().empty(), "whether every rank has the tables' symmetric memory")) tables.reset();
    auto problemOf = [&] { return !buffer->problem().empty() ? buffer->problem() : tables ? tables->problem() : std::string(); };
    buffer->join();
    if (tables) tables->join();
    if (!everyRank(problemOf().empty(), "whether every rank reaches the others' rows")) {
      const std::string problem = problemOf();
      buffer.reset();  // every rank deregisters together
      tables.reset();
      return refuse(problem.empty() ? "another rank cannot reach every rank's memory" : problem);
    }
    // Registered on every rank: the members own them from here (a later failure aborts the world,
    // after which registered memory is left to the driver, so what moved into it stays valid).
    peerMemory_ = std::move(buffer);
    tableMemory_ = std::move(tables);
    // The moves below copy on the legacy stream: nothing of this model's may still be queued.
    check(cudaDeviceSynchronize(), "wait for the GPU before moving the gradients and tables");
    check(cudaMemset(peerMemory_->local(), 0, peerMemory_->bytes()), "clear the table gradient accumulators");
    std::vector<float*> grads;
    std::vector<unsigned char*> flags;
    for (void* base : peerMemory_->ranks()) {
      grads.push_back(static_cast<float*>(base));
      flags.push_back(static_cast<unsigned char*>(base) + gradBytes);
    }
    memory_.release(keyGrad_);
    memory_.release(touched_);
    keyGrad_ = static_cast<float*>(peerMemory_->local());
    touched_ = static_cast<unsigned char*>(peerMemory_->local()) + gradBytes;
    memory_.adopt("gradients:table accumulators (NCCL symmetric memory)", keyGrad_, gradBytes);
    memory_.adopt("gradients:touched rows (NCCL symmetric memory)", touched_, (size_t)totalRows_);
    if (symmetricDense) {
      char* base = static_cast<char*>(peerMemory_->local()) + gradBytes + flagBytes;
      moveDenseGradients(reinterpret_cast<float*>(base));
      memory_.adopt("gradients:dense parameters (NCCL symmetric memory)", denseArena_, denseBytes);
      float* loss = reinterpret_cast<float*>(base + denseBytes);
      check(cudaMemcpy(loss, lossValue_, sizeof(float), cudaMemcpyDeviceToDevice), "move the loss");
      memory_.release(lossValue_);
      lossValue_ = loss;
      memory_.release(peerBarrier_);
      peerBarrier_ = reinterpret_cast<float*>(base + denseBytes + 256);
      memory_.adopt("activations:head (NCCL symmetric memory)", base + denseBytes, scalarBytes);
      symmetricDense_ = true;
    }
    copyToDevice(const_cast<float**>(peers.grads), grads, "copy the peers' rows' lists to the GPU");
    copyToDevice(const_cast<unsigned char**>(peers.touched), flags, "copy the peers' rows' lists to the GPU");
    if (tableMemory_) {
      // Each rank's tables' optimizer writes its rows' weights into every rank's tables.
      moveTables(static_cast<char*>(tableMemory_->local()), " (NCCL symmetric memory)");
      std::vector<long long> offsets;
      for (void* base : tableMemory_->ranks()) offsets.push_back(static_cast<char*>(base) - static_cast<char*>(tableMemory_->local()));
      peers.tableOffsets = upload(lists, offsets);
      peers.owner = world_->rank();
      if (pushRows) {
        const size_t inboxFrom = gradBytes + flagBytes + denseBytes + scalarBytes;
        inbox_ = static_cast<char*>(peerMemory_->local()) + inboxFrom;
        memory_.adopt("gradients:rows pushed by the other ranks (NCCL symmetric memory)", inbox_, inboxBytes + inboxFlagBytes);
        peers.inboxAt = (long long)(inboxFrom / sizeof(float));
        peers.inboxFlagsAt = (long long)(inboxFrom + inboxBytes - gradBytes);
        peers.inboxSlice = inboxSlice;
        peers.flagSlice = flagSlice;
        peers.tables = upload(lists, peerTables);
      }
    }
    peers_ = peers;
    return true;
  }

  static size_t aligned256(size_t bytes) { return (bytes + 255) / 256 * 256; }

  /** Copies the dense gradients' arena to `arena` and re-points the dense parameters' gradients into it (the old arena is released). */
  void moveDenseGradients(float* arena) {
    check(cudaMemcpy(arena, denseArena_, (size_t)denseArenaFloats_ * sizeof(float), cudaMemcpyDeviceToDevice), "move the dense gradients");
    for (size_t p = 0; p < plan_.parameters.size(); p++)
      if (plan_.parameters[p].kind == ParameterKind::Dense && buffers_[p].grad >= denseArena_ && buffers_[p].grad < denseArena_ + denseArenaFloats_)
        buffers_[p].grad = arena + (buffers_[p].grad - denseArena_);
    memory_.release(denseArena_);
    denseArena_ = arena;
  }

  /** The bytes moveTables lays every table's values and slots out in (each 256-byte aligned). */
  size_t tableStateBytes() const {
    size_t bytes = 0;
    for (int p : tables_) {
      const Parameter& spec = plan_.parameters[p];
      bytes += (size_t)(1 + std::min(spec.slots, 2)) * aligned256((size_t)spec.size * sizeof(float));
    }
    return std::max<size_t>(bytes, 256);
  }

  /**
   * Moves every table's values and slots into `base` (tableStateBytes() bytes, whose owner frees
   * it), or with nullptr back into memory of their own, and re-points what names them on the device.
   */
  void moveTables(char* base, const char* where) {
    size_t at = 0;
    for (int p : tables_) {
      const Parameter& spec = plan_.parameters[p];
      ParameterBuffers& b = buffers_[p];
      const size_t bytes = (size_t)spec.size * sizeof(float);
      auto move = [&](float*& from, const std::string& name) {
        float* to = base ? reinterpret_cast<float*>(base + at) : memory_.make<float>(name, spec.size);
        if (base) memory_.adopt(name + where, to, bytes);
        at += aligned256(bytes);
        check(cudaMemcpy(to, from, bytes, cudaMemcpyDeviceToDevice), "move a table");
        memory_.release(from);
        from = to;
      };
      move(b.value, "tables:" + spec.name);
      for (int s = 0; s < spec.slots && s < 2; s++) move(b.slots[s], "optimizer slots:" + spec.name);
    }
    uploadTablePointers();
  }

  /** The tables' value and slot pointers into the device arrays the optimizers and lookups read. */
  void uploadTablePointers() {
    std::vector<float*> values, slot0, slot1;
    for (int p : tables_) {
      values.push_back(buffers_[p].value);
      slot0.push_back(buffers_[p].slots[0]);
      slot1.push_back(buffers_[p].slots[1]);
    }
    const char* what = "copy the tables' pointers to the GPU";
    copyToDevice(tableValuesDev_, values, what);
    copyToDevice(tableSlot0Dev_, slot0, what);
    copyToDevice(tableSlot1Dev_, slot1, what);
    for (size_t i = 0; i < wideLookupsHost_.size(); i++) wideLookupsHost_[i].table = buffers_[wideLookupTables_[i]].value;
    for (size_t i = 0; i < deepLookupsHost_.size(); i++) deepLookupsHost_[i].table = buffers_[deepLookupTables_[i]].value;
    copyToDevice(wideLookupsDev_, wideLookupsHost_, what);
    copyToDevice(deepLookupsDev_, deepLookupsHost_, what);
  }

  /** The peers' rows' events: every rank's gradients final, and this rank's rows cleared. */
  void createPeerEvents() {
    check(cudaEventCreateWithFlags(&peersReady_, cudaEventDisableTiming), "cudaEventCreate");
    check(cudaEventCreateWithFlags(&peerRowsCleared_, cudaEventDisableTiming), "cudaEventCreate");
  }

  void destroyPeerEvents() {
    for (cudaEvent_t* e : {&peersReady_, &peerRowsCleared_}) {
      if (*e) cudaEventDestroy(*e);
      *e = nullptr;
    }
  }

  /** Back to plain accumulators (a failed joinWorld: later steps train alone). */
  void dropPeerRows() {
    destroyPeerEvents();
    peers_ = PeerRows{};
    peerRowsPending_ = false;
    if (!peerMemory_) return;
    // After an abort (how a failed join ends) the symmetric memory is never freed (PeerBuffer): the
    // tables, the dense gradients and the loss stay where they are.
    const bool keepInPlace = world_ && world_->aborted();
    if (tableMemory_) {
      if (!keepInPlace) moveTables(nullptr, "");
      tableMemory_.reset();
    }
    if (symmetricDense_ && !keepInPlace) {
      moveDenseGradients(memory_.make<float>("gradients:dense parameters", std::max<long long>(1, denseArenaFloats_)));
      memory_.release(lossValue_);
      lossValue_ = memory_.make<float>("activations:head", 1);
      check(cudaMemset(lossValue_, 0, sizeof(float)), "clear the loss");
      symmetricDense_ = false;
    }
    memory_.release(keyGrad_);
    memory_.release(touched_);
    memory_.release(inbox_);
    inbox_ = nullptr;
    peerMemory_.reset();
    keyGrad_ = memory_.make<float>("gradients:table accumulators", keyGradFloats_);
    check(cudaMemset(keyGrad_, 0, keyGradFloats_ * sizeof(float)), "clear the table gradient accumulators");
    touched_ = memory_.make<unsigned char>("gradients:touched rows", totalRows_);
    check(cudaMemset(touched_, 0, totalRows_), "clear the touched-row flags");
  }

  void broadcastState(int root) override {
    if (!world_) throw Error("broadcastState outside a data-parallel job");
    // Rows split between the ranks: the root's slots of the others' rows may be stale; fetch them first.
    for (int p : tables_)
      for (int slot = 0; world_->rank() == root && slot < 2; slot++) gatherOwnedSlots(commStream_, p, slot);
    for (size_t p = 0; p < plan_.parameters.size(); p++) {
      const Parameter& spec = plan_.parameters[p];
      world_->broadcast(buffers_[p].value, spec.size * sizeof(float), root, commStream_, spec.name.c_str());
      for (int s = 0; s < spec.slots && s < 2; s++) world_->broadcast(buffers_[p].slots[s], spec.size * sizeof(float), root, commStream_, spec.name.c_str());
    }
    awaitRanks(commStream_, "broadcast the model");
    for (auto& scattered : slotsScattered_) scattered = {false, false};
  }

  std::vector<TableExchangeOut> exchangePlan() override {
    std::vector<TableExchangeOut> out;
    for (size_t t = 0; t < tables_.size() && t < exchange_.size(); t++) {
      const TableExchange& x = exchange_[t];
      const std::string rows = !x.peer ? "" : peers_.owner < 0 ? "replicated" : peers_.inboxAt >= 0 ? "split-pushed" : "split";
      out.push_back({plan_.parameters[tables_[t]].name, x.peer ? "peer" : x.rows ? "rows" : "dense", x.large && !x.peer ? peerRowsUnavailable_ : "", rows});
    }
    return out;
  }

  /** compactTouched in no set order, in one pass (the data-parallel step's side stream). */
  void listTouched(cudaStream_t s) {
    check(cudaMemsetAsync(touchedCount_, 0, sizeof(int), s), "reset the touched-row count");
    launchListFlagged(s, allTouchedRange_, 1, totalRows_);
  }

  void compactTouched(cudaStream_t s) {
    if (tables_.empty()) return;
    launchSelectFlagged(s, touched_, totalRows_, touchedList_, touchedCount_, selectTemp_, selectTempBytes_);
  }

  void applyDense(cudaStream_t s, size_t p, const StepScalars& scalars) {
    const Parameter& spec = plan_.parameters[p];
    const bool fp16 = plan_.precision == Precision::Fp16;
    launchDenseApply(s, optimizerArgs(spec.part, scalars), buffers_[p].value, buffers_[p].grad, buffers_[p].slots[0], buffers_[p].slots[1], spec.size,
                     fp16 ? lossScale_ : nullptr, fp16 ? overflow_ : nullptr);
  }

  /** The tables' optimizers over the touched rows (touchedList_). */
  void sparseApply(cudaStream_t s, const StepScalars& scalars, bool apply) { sparseApplyRows(s, scalars, apply, touchedList_, touchedCount_, PeerRows{}); }

  /** The tables' optimizers over `list`'s *count rows; with `peers` (planPeerRows) each row summed over the ranks. */
  void sparseApplyRows(cudaStream_t s, const StepScalars& scalars, bool apply, const int* list, const int* count, const PeerRows& peers) {
    if (tables_.empty()) return;
    const bool fp16 = plan_.precision == Precision::Fp16;
    OptimizerPair pair{{optimizerArgs(0, scalars), optimizerArgs(1, scalars)}};
    launchSparseApply(s, pair, list, count, totalRows_, tableRowBaseDev_, tableGradBaseDev_, tableDimDev_, tablePartDev_, tableValuesDev_, tableSlot0Dev_,
                      tableSlot1Dev_, (int)tables_.size(), keyGrad_, touched_, fp16 ? lossScale_ : nullptr, fp16 ? overflow_ : nullptr, apply, peers);
  }

  /**
   * Rows split between the ranks: once every rank's tables' optimizer is done (a one-word
   * all-reduce after it, queued before the kernels' sums), every rank's tables hold the step's
   * updates and its rows are cleared (peerRowsCleared_): the next step's lookups and backward pass
   * wait for that.
   */
  void settleOwnedRows(const StepScalars* sideScalars) {
    if (peers_.owner < 0 || !sideScalars || tables_.empty()) return;
    check(cudaStreamWaitEvent(commStream_, sideDone_, 0), "order the communication stream");
    world_->allReduceSum(peerBarrier_, 1, commStream_, "the end of the tables' updates (a barrier)");
    check(cudaEventRecord(peerRowsCleared_, commStream_), "record the updated tables");
    stamp(commStream_, "comm: every rank's tables updated");
  }

  /**
   * After the tables' optimizers of a step with peers_ (on the communication stream, so that the
   * next step's backward pass waits for it only where it adds into the accumulators): a barrier
   * (a one-word all-reduce: every rank's optimizers are done reading this rank's rows), then this
   * rank clears its rows and flags of the tables read from every rank.
   */
  void clearPeerRows() {
    if (peers_.size == 0 || tables_.empty()) return;
    if (peers_.owner >= 0) {
      // The owners cleared the rows in their optimizer; the barrier is queued (settleOwnedRows).
      peerRowsPending_ = true;
      return;
    }
    check(cudaStreamWaitEvent(commStream_, sideDone_, 0), "order the communication stream");
    world_->allReduceSum(peerBarrier_, 1, commStream_, "the end of the tables' reads (a barrier)");
    launchClearPeerRows(commStream_, peers_, touchedList_, touchedCount_, totalRows_, tableRowBaseDev_, tableGradBaseDev_, tableDimDev_, (int)tables_.size(),
                        keyGrad_, touched_);
    check(cudaEventRecord(peerRowsCleared_, commStream_), "record the cleared rows");
    stamp(commStream_, "comm: rows read by every rank cleared");
    peerRowsPending_ = true;
  }

  /** Overwrites the device array `device` (made by upload, as long) with `host`. */
  template <typename V>
  void copyToDevice(V* device, const std::vector<V>& host, const char* what) {
    if (!host.empty()) check(cudaMemcpy(device, host.data(), host.size() * sizeof(V), cudaMemcpyHostToDevice), what);
  }

  template <typename V>
  V* upload(const std::string& name, const std::vector<V>& host) {
    V* d = memory_.make<V>(name, std::max<size_t>(1, host.size()));
    if (!host.empty()) check(cudaMemcpy(d, host.data(), host.size() * sizeof(V), cudaMemcpyHostToDevice), ("copy " + name + " to the GPU").c_str());
    return d;
  }

  void build() {
    const int cap = plan_.batchCapacity;
    if (cap <= 0) throw Error("batchCapacity must be positive");
    hasWide_ = plan_.wideBias >= 0 || plan_.wideNumeric >= 0 || !plan_.wideLookups.empty();
    movingAverageRate_ = (float)(1.0 - (double)plan_.batchNormMomentum);
    // Parameters, slots, gradients.
    buffers_.resize(plan_.parameters.size());
    slotsScattered_.assign(plan_.parameters.size(), {false, false});
    long long gradFloats = 0, rows = 0;
    std::vector<long long> denseOffsets(plan_.parameters.size(), -1);
    // Dense gradients share one arena (64-float aligned pieces): first every one but the hidden
    // layers' kernels, which are final early in the backward pass and are summed over the ranks
    // together; then the kernels, in layer order, each summed as soon as it is made.
    std::vector<bool> hiddenKernel(plan_.parameters.size(), false);
    for (size_t i = 0; i + 1 < plan_.layers.size(); i++) hiddenKernel.at(plan_.layers[i].kernel) = true;
    for (int pass = 0; pass < 2; pass++) {
      for (size_t p = 0; p < plan_.parameters.size(); p++) {
        if (plan_.parameters[p].kind != ParameterKind::Dense || hiddenKernel[p] != (pass == 1)) continue;
        denseOffsets[p] = denseArenaFloats_;
        denseArenaFloats_ += (plan_.parameters[p].size + 63) / 64 * 64;
      }
      if (pass == 0) restFloats_ = denseArenaFloats_;
    }
    for (size_t p = 0; p < plan_.parameters.size(); p++) {
      const Parameter& spec = plan_.parameters[p];
      const bool table = spec.kind == ParameterKind::Table;
      ParameterBuffers& b = buffers_[p];
      b.value = memory_.make<float>((table ? "tables:" : "dense parameters:") + spec.name, spec.size);
      for (int s = 0; s < spec.slots && s < 2; s++) b.slots[s] = memory_.make<float>("optimizer slots:" + spec.name, spec.size);
      if (table) {
        gradFloats = (gradFloats + 3) / 4 * 4;  // 16-byte aligned rows for the vector atomics
        b.gradBase = gradFloats;
        b.rowBase = rows;
        gradFloats += spec.size;
        rows += spec.rows;
        tables_.push_back(static_cast<int>(p));
      }
      if (spec.kind == ParameterKind::Statistic && spec.slots != 0) throw Error("`" + spec.name + "` is a statistic and has no optimizer slots");
    }
    denseArena_ = memory_.make<float>("gradients:dense parameters", std::max<long long>(1, denseArenaFloats_));
    for (size_t p = 0; p < plan_.parameters.size(); p++)
      if (denseOffsets[p] >= 0) buffers_[p].grad = denseArena_ + denseOffsets[p];
    if (rows >= (1ll << 31)) throw Error("the tables hold " + std::to_string(rows) + " rows in all; the CUDA engine supports fewer than 2^31");
    totalRows_ = rows;
    if (!tables_.empty()) {
      keyGradFloats_ = gradFloats;
      keyGrad_ = memory_.make<float>("gradients:table accumulators", gradFloats);
      check(cudaMemset(keyGrad_, 0, gradFloats * sizeof(float)), "clear the table gradient accumulators");
      touched_ = memory_.make<unsigned char>("gradients:touched rows", rows);
      check(cudaMemset(touched_, 0, rows), "clear the touched-row flags");
      touchedList_ = memory_.make<int>("gradients:touched rows", rows);
      touchedCount_ = memory_.make<int>("gradients:touched rows", 1);
      check(cudaMemset(touchedCount_, 0, sizeof(int)), "clear the touched-row count");
      selectTempBytes_ = selectFlaggedTempBytes(rows);
      selectTemp_ = memory_.allocate("workspace:row compaction", selectTempBytes_);
      std::vector<long long> rowBase, gradBase;
      std::vector<int> dims, parts;
      std::vector<float*> values, slot0, slot1;
      for (int p : tables_) {
        rowBase.push_back(buffers_[p].rowBase);
        gradBase.push_back(buffers_[p].gradBase);
        dims.push_back(plan_.parameters[p].dim);
        parts.push_back(plan_.parameters[p].part);
        values.push_back(buffers_[p].value);
        slot0.push_back(buffers_[p].slots[0]);
        slot1.push_back(buffers_[p].slots[1]);
      }
      tableRowBaseDev_ = upload("plan:tables", rowBase);
      tableGradBaseDev_ = upload("plan:tables", gradBase);
      tableDimDev_ = upload("plan:tables", dims);
      tablePartDev_ = upload("plan:tables", parts);
      tableValuesDev_ = upload("plan:tables", values);
      tableSlot0Dev_ = upload("plan:tables", slot0);
      tableSlot1Dev_ = upload("plan:tables", slot1);
    }
    // Lookups.
    auto devLookup = [&](const Lookup& l, int index) {
      const Parameter& t = param(l.table);
      if (t.kind != ParameterKind::Table) throw Error("lookup " + std::to_string(index) + " reads `" + t.name + "`, which is not a table");
      return DevLookup{buffers_[l.table].value, t.rows, t.dim, l.idOffset, l.width, l.lengthSlot, l.weightOffset, static_cast<int>(l.combiner), l.outOffset,
                       buffers_[l.table].gradBase, buffers_[l.table].rowBase, index};
    };
    std::vector<DevLookup> wide, deep;
    auto describe = [&](const Lookup& l) { return "`" + param(l.table).name + "` (" + std::to_string(param(l.table).rows) + " rows)"; };
    for (size_t i = 0; i < plan_.wideLookups.size(); i++) {
      wide.push_back(devLookup(plan_.wideLookups[i], (int)i));
      wideLookupTables_.push_back(plan_.wideLookups[i].table);
      wideLookupNames_.push_back(describe(plan_.wideLookups[i]));
    }
    std::vector<DevDenseJob> jobs;
    for (const Piece& piece : plan_.pieces) {
      if (piece.kind == Piece::Embedding) {
        deep.push_back(devLookup(piece.lookup, (int)deep.size()));
        deepLookupTables_.push_back(piece.lookup.table);
        deepLookupNames_.push_back(describe(piece.lookup));
      } else if (piece.kind == Piece::Indicator) {
        indicatorNames_.resize(jobs.size() + 1, "");
        indicatorNames_[jobs.size()] = "the indicator at deep input column " + std::to_string(piece.outOffset) + " (" + std::to_string(piece.buckets) + " buckets)";
        jobs.push_back({1, 0, piece.outOffset, piece.lookup.idOffset, piece.lookup.width, piece.lookup.lengthSlot, piece.lookup.weightOffset, piece.buckets});
      }
      else
        for (size_t k = 0; k < piece.sourceColumns.size(); k++) jobs.push_back({0, piece.sourceColumns[k], piece.outOffset + (int)k, 0, 0, -1, -1, 0});
    }
    wideLookupsDev_ = upload("plan:lookups", wide);
    deepLookupsDev_ = upload("plan:lookups", deep);
    wideLookupsHost_ = wide;
    deepLookupsHost_ = deep;
    deepLookupCount_ = (int)deep.size();
    denseJobsDev_ = upload("plan:lookups", jobs);
    denseJobCount_ = (int)jobs.size();
    wideNumericColumnsDev_ = upload("plan:lookups", plan_.wideNumericColumns);
    // Activations.
    int maxWidth = std::max(1, plan_.deepInputWidth), maxUnits = 1;
    const size_t layers = plan_.layers.size();
    pre_.assign(layers, nullptr);
    out_.assign(layers, nullptr);
    y_.assign(layers, nullptr);
    masks_.assign(layers, nullptr);
    batchMean_.assign(layers, nullptr);
    batchVariance_.assign(layers, nullptr);
    if (layers > 0) {
      x0_ = memory_.make<T>("activations:deep input", (size_t)cap * plan_.deepInputWidth);
      for (size_t i = 0; i + 1 < layers; i++) {
        const Layer& l = plan_.layers[i];
        maxWidth = std::max(maxWidth, l.units);
        maxUnits = std::max(maxUnits, l.units);
        out_[i] = memory_.make<T>("activations:layer outputs", (size_t)cap * l.units);
        if (!fastLayer(i)) pre_[i] = memory_.make<T>("activations:pre-activations", (size_t)cap * l.units);
        if (l.gamma >= 0) {
          y_[i] = memory_.make<T>("activations:batch norm inputs", (size_t)cap * l.units);
          batchMean_[i] = memory_.make<float>("activations:batch moments", l.units);
          batchVariance_[i] = memory_.make<float>("activations:batch moments", l.units);
        }
      }
      dOut_[0] = memory_.make<T>("activations:gradients", (size_t)cap * maxWidth);
      dOut_[1] = memory_.make<T>("activations:gradients", (size_t)cap * maxWidth);
      dPre_[0] = memory_.make<T>("activations:gradients", (size_t)cap * maxUnits);
      dPre_[1] = memory_.make<T>("activations:gradients", (size_t)cap * maxUnits);
      if (lowPrecision())
        for (size_t i = 0; i + 1 < layers; i++) {
          for (int p : {plan_.layers[i].kernel, plan_.layers[i].bias})
            lowCopy_[p] = memory_.allocate("dense parameters:16-bit copies", plan_.parameters[p].size * sizeof(T));
        }
    }
    const int maxCols = std::max({maxWidth, (int)plan_.wideNumericColumns.size(), 1});
    partial_ = memory_.make<float>("activations:reductions", (size_t)maxReductionChunks(cap) * maxCols);
    wideLogit_ = memory_.make<float>("activations:head", cap);
    z_ = memory_.make<float>("activations:head", cap);
    probabilities_ = memory_.make<float>("activations:head", cap);
    rowLoss_ = memory_.make<float>("activations:head", cap);
    dz_ = memory_.make<float>("activations:head", cap);
    lossValue_ = memory_.make<float>("activations:head", 1);
    badId_ = memory_.make<BadId>("activations:checks", 1);
    check(cudaMemset(badId_, 0, sizeof(BadId)), "clear the bad-id record");
    check(cudaMemset(lossValue_, 0, sizeof(float)), "clear the loss");
    if (plan_.precision == Precision::Fp16) {
      lossScale_ = memory_.make<float>("activations:loss scale", 1);
      goodSteps_ = memory_.make<int>("activations:loss scale", 1);
      skipped_ = memory_.make<int>("activations:loss scale", 1);
      overflow_ = memory_.make<int>("activations:loss scale", 1);
      check(cudaMemcpy(lossScale_, &plan_.lossScaleInitial, sizeof(float), cudaMemcpyHostToDevice), "set the loss scale");
      check(cudaMemset(goodSteps_, 0, sizeof(int)), "set the loss scale");
      check(cudaMemset(skipped_, 0, sizeof(int)), "set the loss scale");
    }
    // Batches: two device buffer sets fed from two pinned staging areas.
    for (int k = 0; k < 2; k++) {
      HostStaging& st = staging_[k];
      const Columns c = columns(cap);
      st.bytes = c.ids + c.lengths + c.weights + c.numeric + 2 * c.rows;
      check(cudaHostAlloc(&st.pinned, st.bytes, cudaHostAllocDefault), "allocate pinned host memory for batches");
      check(cudaEventCreateWithFlags(&st.copied, cudaEventDisableTiming), "cudaEventCreate");
      check(cudaEventCreateWithFlags(&st.consumed, cudaEventDisableTiming), "cudaEventCreate");
      st.device.ids = memory_.make<int>("batches:ids", std::max<size_t>(1, (size_t)cap * plan_.idsWidth));
      st.device.lengths = memory_.make<int>("batches:lengths", std::max<size_t>(1, (size_t)cap * plan_.lengthsWidth));
      st.device.weights = memory_.make<float>("batches:weights", std::max<size_t>(1, (size_t)cap * plan_.weightsWidth));
      st.device.numeric = memory_.make<float>("batches:numeric", std::max<size_t>(1, (size_t)cap * plan_.numericWidth));
      st.device.label = memory_.make<float>("batches:label", cap);
      st.device.weight = memory_.make<float>("batches:weight", cap);
    }
    check(cudaHostAlloc(reinterpret_cast<void**>(&host_), sizeof(HostState), cudaHostAllocDefault), "allocate pinned host memory");
    std::memset(host_, 0, sizeof(HostState));
    workspace_ = memory_.allocate("workspace:cuBLASLt", kWorkspaceBytes);
    const lt::cublasComputeType_t compute = plan_.precision == Precision::Tf32 ? lt::CUBLAS_COMPUTE_32F_FAST_TF32 : lt::CUBLAS_COMPUTE_32F;
    gemm_.reset(new Gemm(compute, workspace_, kWorkspaceBytes));
    planFusedEpilogues();
    check(cudaEventRecord(stepDone_, stream_), "record");
    check(cudaDeviceSynchronize(), "build the model on the GPU");
  }

  /** Per hidden layer, its own dPre and a kernel-gradient event (once: the products beside the chain and data parallelism share them). */
  void allocateLayerGradients(const std::string& what) {
    if (!layerDPre_.empty() || plan_.layers.size() < 2) return;
    kernelDone_.assign(plan_.layers.size() - 1, nullptr);
    for (cudaEvent_t& e : kernelDone_) check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
    for (size_t i = 0; i + 1 < plan_.layers.size(); i++)
      layerDPre_.push_back(memory_.make<T>(what, (size_t)plan_.batchCapacity * plan_.layers[i].units));
  }

  /**
   * Single-GPU steps run each layer's kernel-gradient product on a stream of its own as soon as its
   * dPre is made, beside the rest of the backward chain (memory-bound activation gradients and the
   * embedding scatter) instead of inline: 2 to 4% faster on Outbrain (H100, H200). The products
   * plan for all SMs but WNDC_CUDA_BESIDE_RESERVE (default 32); WNDC_CUDA_PRODUCTS_BESIDE=0 runs
   * them inline. They have their own cuBLASLt workspace (split-K products keep partial sums there).
   */
  /** Drops each layer's own dPre and its kernel-gradient events (allocateLayerGradients undone). */
  void releaseLayerGradients() {
    for (T* b : layerDPre_) memory_.release(b);
    layerDPre_.clear();
    for (cudaEvent_t e : kernelDone_)
      if (e) cudaEventDestroy(e);
    kernelDone_.clear();
  }

  void planProductsBeside() {
    const char* flag = std::getenv("WNDC_CUDA_PRODUCTS_BESIDE");
    if ((flag && std::string(flag) == "0") || plan_.layers.size() < 2) return;
    // Every step then keeps each layer's dPre (beside the chain, or data-parallel): the two shared
    // buffers give way to one per layer. Where the GPU lacks the memory, the products stay inline.
    for (T*& b : dPre_) {
      memory_.release(b);
      b = nullptr;
    }
    void* workspace = nullptr;
    // Data parallelism has its per-layer buffers already (joinWorldBuffers): those stay.
    const bool hadLayerGradients = !layerDPre_.empty();
    try {
      workspace = memory_.allocate("workspace:cuBLASLt (products)", kWorkspaceBytes);
      allocateLayerGradients("activations:layer gradients");
    } catch (const Error&) {
      memory_.release(workspace);
      if (!hadLayerGradients) {
        releaseLayerGradients();
      }
      size_t maxUnits = 1;
      for (size_t i = 0; i + 1 < plan_.layers.size(); i++) maxUnits = std::max(maxUnits, (size_t)plan_.layers[i].units);
      for (T*& b : dPre_) b = memory_.make<T>("activations:gradients", (size_t)plan_.batchCapacity * maxUnits);
      return;
    }
    int least = 0, greatest = 0;
    check(cudaDeviceGetStreamPriorityRange(&least, &greatest), "cudaDeviceGetStreamPriorityRange");
    check(cudaStreamCreateWithPriority(&productStream_, cudaStreamNonBlocking, least), "cudaStreamCreate (products)");
    check(cudaEventCreateWithFlags(&productsDone_, cudaEventDisableTiming), "cudaEventCreate");
    dPreReady_.assign(plan_.layers.size() - 1, nullptr);
    for (cudaEvent_t& e : dPreReady_) check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
    int sms = 0;
    check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device_), "cudaDeviceGetAttribute");
    const char* reserveText = std::getenv("WNDC_CUDA_BESIDE_RESERVE");
    const int reserve = reserveText ? std::atoi(reserveText) : 32;
    besideSms_ = reserve > 0 && reserve < sms ? sms - reserve : 0;
    const lt::cublasComputeType_t compute = plan_.precision == Precision::Tf32 ? lt::CUBLAS_COMPUTE_32F_FAST_TF32 : lt::CUBLAS_COMPUTE_32F;
    productGemm_.reset(new Gemm(compute, workspace, kWorkspaceBytes));
  }

  /** Queues layer `i`'s kernel-gradient product on the products' stream, after its dPre (see planProductsBeside). */
  void productBeside(size_t i) {
    // Pending from the first product on: a step that fails half-way still makes the next forward wait.
    productsPending_ = true;
    check(cudaEventRecord(dPreReady_[i], stream_), "record a layer gradient");
    check(cudaStreamWaitEvent(productStream_, dPreReady_[i], 0), "order the products' stream");
    kernelGradient(i, layerDPre_[i], besideSms_, productStream_);
    // The stamp first: the compute stream's wait for productsDone_ then covers it too.
    stamp(productStream_, "products: kernel gradient ", i, " made");
    // Data parallelism: the communication stream sums it from here.
    if (world_) check(cudaEventRecord(kernelDone_[i], productStream_), "record a kernel gradient");
    check(cudaEventRecord(productsDone_, productStream_), "record the kernel gradients");
  }

  /**
   * Chooses the layers whose ReLU runs in cuBLASLt epilogues (RELU_AUX_BIAS forward, DRELU_BGRAD
   * backward): ReLU without dropout or batch norm, units a multiple of 128 (the bit mask's leading
   * dimension must be), feeding another hidden layer. WNDC_CUDA_FUSED_EPILOGUES=0 turns it off.
   */
  void planFusedEpilogues() {
    // Off by default: on an H200 (Outbrain, bf16) DRELU_BGRAD took 1.04 ms where the plain product
    // and wndc's own activation-gradient kernel took 0.31 + 0.50 ms.
    const char* flag = std::getenv("WNDC_CUDA_FUSED_EPILOGUES");
    const bool enabled = flag && std::string(flag) == "1";
    const size_t layers = plan_.layers.size();
    aux_.assign(layers, nullptr);
    if (!enabled || layers < 3) return;
    const int cap = plan_.batchCapacity;
    int maxUnits = 0;
    for (size_t i = 0; i + 2 < layers; i++) {
      const Layer& l = plan_.layers[i];
      if (!fastLayer(i) || l.units % 128 != 0) continue;
      // Probe both products with the capacity's shape: use the fusion only where cuBLASLt has it.
      GemmCall forward = forwardProduct(l, cap);
      forward.epilogue = lt::CUBLASLT_EPILOGUE_RELU_AUX_BIAS;
      forward.aux = reinterpret_cast<void*>(256);
      forward.auxLd = l.units;
      forward.what = "fused ReLU forward probe";
      const Layer& above = plan_.layers[i + 1];
      GemmCall backward = inputGradientProduct(above, cap);
      backward.epilogue = lt::CUBLASLT_EPILOGUE_DRELU_BGRAD;
      backward.aux = reinterpret_cast<void*>(256);
      backward.auxLd = l.units;
      backward.bias = reinterpret_cast<void*>(256);
      backward.biasType = CUDA_R_32F;
      backward.what = "fused ReLU backward probe";
      if (!gemm_->supports(forward)) continue;
      if (!gemm_->supports(backward)) {
        backward.biasType = dataType<T>();
        if (!gemm_->supports(backward)) continue;
        biasGradType_ = dataType<T>();
      }
      maxUnits = std::max(maxUnits, l.units);
      aux_[i] = memory_.allocate("activations:relu masks", (size_t)l.units / 8 * cap);
    }
    if (biasGradType_ != CUDA_R_32F && maxUnits > 0) biasGradScratch_ = memory_.allocate("activations:bias gradients", (size_t)maxUnits * sizeof(T));
  }

  void release() {
    if (released_) return;
    released_ = true;
    // In a data-parallel job, the last steps' work may wait on NCCL for a rank that is gone: wait
    // for it as a step would, so that such a wait ends in an abort rather than for ever.
    if (world_ && !world_->aborted() && rankTimeout_ > 0) {
      try {
        for (cudaStream_t s : {stream_, commStream_, sideStream_, copyStream_})
          if (s) awaitRanks(s, "the last steps' work");
      } catch (const std::exception&) {
        // Aborted: handled below.
      }
    }
    // After an abort, kernels of that job might never end, and synchronising or freeing (cudaFree
    // and cudaFreeHost wait for the whole GPU) could wait for ever: the process is on its way out,
    // so leave the memory and handles to the driver.
    if (world_ && world_->aborted()) {
      memory_.abandon();
      gemm_.release();
      productGemm_.release();
      return;
    }
    cudaSetDevice(device_);
    if (stream_) cudaStreamSynchronize(stream_);
    if (copyStream_) cudaStreamSynchronize(copyStream_);
    if (commStream_) cudaStreamSynchronize(commStream_);
    if (sideStream_) cudaStreamSynchronize(sideStream_);
    if (productStream_) cudaStreamSynchronize(productStream_);
    destroyPeerEvents();
    // The symmetric memory goes before the communicator it is registered with.
    if (peerMemory_) {
      memory_.release(keyGrad_);
      memory_.release(touched_);
      peerMemory_.reset();
    }
    tableMemory_.reset();
    world_.reset();
    if (hostCounts_) cudaFreeHost(hostCounts_);
    hostCounts_ = nullptr;
    if (agreementHost_) cudaFreeHost(agreementHost_);
    agreementHost_ = nullptr;
    if (commStream_) cudaStreamDestroy(commStream_);
    if (computeReady_) cudaEventDestroy(computeReady_);
    if (commDone_) cudaEventDestroy(commDone_);
    if (countsReady_) cudaEventDestroy(countsReady_);
    countsReady_ = nullptr;
    if (sideStream_) cudaStreamDestroy(sideStream_);
    if (tablesDone_) cudaEventDestroy(tablesDone_);
    if (sideDone_) cudaEventDestroy(sideDone_);
    if (kernelsSummed_) cudaEventDestroy(kernelsSummed_);
    kernelsSummed_ = nullptr;
    if (productStream_) {
      cudaStreamSynchronize(productStream_);
      cudaStreamDestroy(productStream_);
      productStream_ = nullptr;
    }
    for (cudaEvent_t e : dPreReady_)
      if (e) cudaEventDestroy(e);
    dPreReady_.clear();
    if (productsDone_) cudaEventDestroy(productsDone_);
    productsDone_ = nullptr;
    for (cudaEvent_t e : kernelDone_)
      if (e) cudaEventDestroy(e);
    kernelDone_.clear();
    sideStream_ = nullptr;
    tablesDone_ = sideDone_ = nullptr;
    commStream_ = nullptr;
    computeReady_ = commDone_ = nullptr;
    productGemm_.reset();
    gemm_.reset();
    memory_.releaseAll();
    for (HostStaging& st : staging_) {
      if (st.pinned) cudaFreeHost(st.pinned);
      if (st.copied) cudaEventDestroy(st.copied);
      if (st.consumed) cudaEventDestroy(st.consumed);
      st = HostStaging{};
    }
    if (host_) cudaFreeHost(host_);
    host_ = nullptr;
    marks_.release();
    stamps_.release();
    for (auto& e : commEvents_)
      if (e) cudaEventDestroy(e);
    if (stepDone_) cudaEventDestroy(stepDone_);
    if (stream_) cudaStreamDestroy(stream_);
    if (copyStream_) cudaStreamDestroy(copyStream_);
    stream_ = copyStream_ = nullptr;
    stepDone_ = nullptr;
  }

  Plan plan_;
  int device_;
  bool released_ = false;
  DeviceMemory memory_;
  cudaStream_t stream_ = nullptr, copyStream_ = nullptr;
  cudaEvent_t stepDone_ = nullptr;
  bool profiling_ = false, profiledStep_ = false;
  /** With profiling on: the communication stream's start of the table exchange, its end, the end of the kernel sums. */
  static constexpr int kCommMarks = 3;
  cudaEvent_t commEvents_[kCommMarks] = {nullptr, nullptr, nullptr};
  bool commMarked_ = false;
  /** Named profiling events of one step, reused from step to step. */
  struct EventLog {
    std::vector<cudaEvent_t> events;
    std::vector<std::string> names;
    size_t used = 0;
    void record(cudaStream_t s, const std::string& name) {
      if (used == events.size()) {
        cudaEvent_t e;
        check(cudaEventCreate(&e), "cudaEventCreate (profiling)");
        events.push_back(e);
        names.emplace_back();
      }
      check(cudaEventRecord(events[used], s), "record a profiling event");
      names[used++] = name;
    }
    void release() {
      for (cudaEvent_t e : events)
        if (e) cudaEventDestroy(e);
      events.clear();
      names.clear();
      used = 0;
    }
  };
  /** With profiling on: the compute stream's phase boundaries (mark), and timeline points on any stream (stamp). */
  EventLog marks_, stamps_;
  std::vector<std::pair<std::string, double>> phaseTotals_;
  std::map<std::string, size_t> phaseIndex_;
  /**
   * Per phase, the steps that timed it: events on the other streams may not have happened yet when
   * a step's end is seen (the kernels' last sums run on), and those samples are left out.
   */
  std::vector<long long> phaseSamples_;
  std::unique_ptr<Gemm> gemm_;
  void* workspace_ = nullptr;

  std::vector<ParameterBuffers> buffers_;
  std::map<int, void*> lowCopy_;
  std::vector<int> tables_;
  long long totalRows_ = 0;
  float* keyGrad_ = nullptr;
  unsigned char* touched_ = nullptr;
  int* touchedList_ = nullptr;
  int* touchedCount_ = nullptr;
  void* selectTemp_ = nullptr;
  size_t selectTempBytes_ = 0;
  long long* tableRowBaseDev_ = nullptr;
  long long* tableGradBaseDev_ = nullptr;
  int* tableDimDev_ = nullptr;
  int* tablePartDev_ = nullptr;
  float** tableValuesDev_ = nullptr;
  float** tableSlot0Dev_ = nullptr;
  float** tableSlot1Dev_ = nullptr;

  bool hasWide_ = false;
  /** What each lookup reads, for the message about an id outside its table (indexed like the device lists). */
  std::vector<std::string> wideLookupNames_, deepLookupNames_, indicatorNames_;
  float movingAverageRate_ = 0.001f;
  DevLookup* wideLookupsDev_ = nullptr;
  DevLookup* deepLookupsDev_ = nullptr;
  /** The lookups as uploaded, and each one's table (parameter): moveTables re-points them. */
  std::vector<DevLookup> wideLookupsHost_, deepLookupsHost_;
  std::vector<int> wideLookupTables_, deepLookupTables_;
  int deepLookupCount_ = 0;
  DevDenseJob* denseJobsDev_ = nullptr;
  int denseJobCount_ = 0;
  int* wideNumericColumnsDev_ = nullptr;

  T* x0_ = nullptr;
  std::vector<T*> pre_, out_, y_;
  std::vector<float*> masks_, batchMean_, batchVariance_;
  T* dOut_[2] = {nullptr, nullptr};
  T* dPre_[2] = {nullptr, nullptr};
  /** Per hidden layer: the ReLU bit mask of a fused layer, else null. */
  std::vector<void*> aux_;
  /** The bias-gradient type of DRELU_BGRAD (float when cuBLASLt offers it) and, when not float, its scratch. */
  cudaDataType_t biasGradType_ = CUDA_R_32F;
  void* biasGradScratch_ = nullptr;
  float* partial_ = nullptr;
  float *wideLogit_ = nullptr, *z_ = nullptr, *probabilities_ = nullptr, *rowLoss_ = nullptr, *dz_ = nullptr, *lossValue_ = nullptr;
  BadId* badId_ = nullptr;
  float* lossScale_ = nullptr;
  int *goodSteps_ = nullptr, *skipped_ = nullptr, *overflow_ = nullptr;

  // Data parallelism (joinWorld).
  /**
   * How one table's gradients travel: a table of at least kRowExchangeMinBytes may go as its touched
   * rows; each step every rank counts them, the counts are all-gathered, and every rank picks the
   * cheaper of the rows (`rows`, `used` of them per rank at most) and the whole accumulator.
   */
  struct TableExchange {
    bool rows = false;
    /** Read from every rank's accumulator (symmetric memory) by the tables' optimizer: no collective. */
    bool peer = false;
    /** Large enough to go as rows (kRowExchangeMinBytes), whatever it went as this step; with the peers' rows every table goes as peer. */
    bool large = false;
    /** Row records carry bfloat16 values (--amp), else float32. */
    bool bf16 = false;
    /** The most rows any rank touched this step: every rank's record holds that many (its own count first). */
    int used = 0;
    int* list = nullptr;
    int* send = nullptr;
    int* receive = nullptr;
  };
  static constexpr double kRowExchangeMinBytes = 256 * 1024;
  std::vector<size_t> candidates_;
  int* counts_ = nullptr;
  /** Per candidate table, its touched flags, row list and count (device), for launchListFlagged; the longest's rows. */
  FlagRange* candidateRanges_ = nullptr;
  long long mostCandidateRows_ = 0;
  /** Every table's touched flags as one range into touchedList_ (device). */
  FlagRange* allTouchedRange_ = nullptr;
  int* allCounts_ = nullptr;
  int* hostCounts_ = nullptr;
  std::unique_ptr<World> world_;
  /**
   * With the peers' rows (planPeerRows): the symmetric memory holding keyGrad_ and touched_ (after
   * world_, so destroyed first), every rank's as this GPU sees them, the barrier's word, and the
   * clearing of the last step's rows (the next backward pass waits for it).
   */
  std::unique_ptr<PeerBuffer> peerMemory_;
  /** With the rows split between the ranks (PeerRows::owner): every table's values and slots (moveTables). */
  std::unique_ptr<PeerBuffer> tableMemory_;
  /** With pushed rows (PeerRows::inboxAt): the inbox, in peerMemory_. */
  void* inbox_ = nullptr;
  PeerRows peers_{};
  /** A word all-reduced (0 + 0) after the tables' optimizers: a barrier (clearPeerRows, settleOwnedRows). */
  float* peerBarrier_ = nullptr;
  /** Per parameter and slot: rows split between the ranks have updated it since it was last whole here (gatherOwnedSlots). */
  std::vector<std::array<bool, 2>> slotsScattered_;
  /** The dense gradients and the loss live in peerMemory_ (planPeerRows). */
  bool symmetricDense_ = false;
  /** Every table's row range (listed over every rank). */
  RowRange* peerRanges_ = nullptr;
  int peerRangeCount_ = 0;
  long long mostPeerRows_ = 0;
  /** Recorded after the loss's all-reduce: every rank's accumulators are final. */
  cudaEvent_t peersReady_ = nullptr;
  int* agreement_ = nullptr;
  int* agreementHost_ = nullptr;
  cudaEvent_t peerRowsCleared_ = nullptr;
  bool peerRowsPending_ = false;
  /** Why the tables' rows are not read from the peers (exchangePlan's rows and dense instead), "" when they are or no table is large. */
  std::string peerRowsUnavailable_;
  long long keyGradFloats_ = 0;
  cudaStream_t commStream_ = nullptr;
  cudaEvent_t computeReady_ = nullptr, commDone_ = nullptr, countsReady_ = nullptr;
  /** Side stream: the tables' optimizers, after tablesDone_ (with the peers' rows: after peersReady_), beside the kernel-gradient products. */
  cudaStream_t sideStream_ = nullptr;
  cudaEvent_t tablesDone_ = nullptr, sideDone_ = nullptr;
  /** The hidden layers' kernels of the last data-parallel step are summed and updated (pending until the compute stream waits for it). */
  cudaEvent_t kernelsSummed_ = nullptr;
  bool kernelsPending_ = false;
  /** Per hidden layer, its own dPre, so that kernel gradients can wait until the tables are sent. */
  std::vector<T*> layerDPre_;
  /** Products beside the chain (planProductsBeside): their stream, per layer its dPre is made, all products made; SMs they plan for. */
  cudaStream_t productStream_ = nullptr;
  std::vector<cudaEvent_t> dPreReady_;
  cudaEvent_t productsDone_ = nullptr;
  /** The products' own cuBLASLt (and workspace): they run beside the chain's input-gradient products. */
  std::unique_ptr<Gemm> productGemm_;
  bool productsPending_ = false;
  /** Data-parallel steps run the products beside the chain too (with the peers' rows; WNDC_CUDA_DP_BESIDE=0: not). */
  bool dpBeside_ = false;
  bool besidePlanned_ = false;
  int besideSms_ = 0;
  /** Per hidden layer: its kernel gradient is made (the communication stream then sums it). */
  std::vector<cudaEvent_t> kernelDone_;
  /** SMs the kernel-gradient products plan for in a data-parallel step (0: all). */
  int commGemmSms_ = 0;
  /** Seconds a wait for the other ranks' work may take (0: no limit); see awaitRanks. */
  double rankTimeout_ = 0;
  std::vector<TableExchange> exchange_;
  float* denseArena_ = nullptr;
  long long denseArenaFloats_ = 0;
  /** The arena's front: every dense gradient but the hidden layers' kernels (which follow, layer by layer). */
  long long restFloats_ = 0;
  long long globalRows_ = 0, rowOffset_ = 0;

  HostStaging staging_[2];
  int nextStaging_ = 0, currentStaging_ = -1;
  cudaEvent_t pendingCopy_ = nullptr;
  BatchView view_{};
  BatchBuffers dataset_;
  int* order_ = nullptr;
  long long datasetRows_ = 0, orderRows_ = 0, orderCapacity_ = 0;
  HostState* host_ = nullptr;
};

}  // namespace

std::vector<unsigned char> worldUniqueId() {
  const nccl::ncclUniqueId id = World::uniqueId();
  const unsigned char* bytes = reinterpret_cast<const unsigned char*>(&id);
  return std::vector<unsigned char>(bytes, bytes + sizeof id);
}

std::unique_ptr<Model> createModel(const Plan& plan, int device) {
  switch (plan.precision) {
    case Precision::Bf16: return std::unique_ptr<Model>(new ModelImpl<__nv_bfloat16>(plan, device));
    case Precision::Fp16: return std::unique_ptr<Model>(new ModelImpl<__half>(plan, device));
    default: return std::unique_ptr<Model>(new ModelImpl<float>(plan, device));
  }
}

}  // namespace wndc
