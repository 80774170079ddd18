// One compiled Wide & Deep model on one GPU: parameters, optimizer slots, activations and the
// training step. addon.cpp exposes it to JavaScript (runtime/engine/cuda/addon-api.ts NativeModel).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "plan.h"

namespace wndc {

/** Host arrays of a batch or dataset (runtime/data/contracts.ts Batch). */
struct HostBatch {
  const int* ids;
  const int* lengths;
  const float* weights;
  const float* numeric;
  const float* label;
  const float* weight;
};

struct StepScalars {
  float lrWide, lrDeep, adamStepWide, adamStepDeep;
  /** Data parallelism: the rows of the global batch (the loss's divisor; 0: this batch's rows) and where this rank's rows start in it. */
  long long globalRows = 0, rowOffset = 0;
};

/**
 * How one table's gradients travel between ranks: "dense" (all-reduced whole), "rows" (its touched
 * rows all-gathered as records) or "peer" (its rows read from the other ranks' memory by the tables'
 * optimizer); `note`, for "rows", says why not "peer" (empty when chosen so).
 */
struct TableExchangeOut {
  /** `rows` (mode peer): replicated (every rank updates every row), split (each rank its own rows, read from the others), split-pushed (sent to it). */
  std::string table, mode, note, rows;
};

struct SparseGradientOut {
  int parameter;
  std::vector<int> rows;
  std::vector<float> values;
};

struct GradientsOut {
  float loss;
  std::vector<std::vector<float>> dense;
  std::vector<SparseGradientOut> sparse;
};

struct MemoryReport {
  long long used, peak, free, total;
  std::vector<std::pair<std::string, long long>> items;
};

class Model {
 public:
  virtual ~Model() = default;
  virtual void setTensor(int parameter, int slot, const float* data, size_t n) = 0;
  virtual std::vector<float> getTensor(int parameter, int slot) = 0;
  virtual void setBatch(const HostBatch& batch, int size) = 0;
  virtual long long setDataset(const HostBatch& batch, long long rows) = 0;
  virtual void setOrder(const int* order, long long n) = 0;
  virtual void selectRows(long long start, int size) = 0;
  virtual std::vector<float> predict() = 0;
  virtual GradientsOut gradients(long long step, const std::vector<const float*>* masks) = 0;
  virtual void trainStep(long long step, const StepScalars& scalars, const std::vector<const float*>* masks) = 0;
  /** Blocks until the device has finished every step enqueued; throws on a device or data error. */
  virtual void synchronize() = 0;
  virtual float lastLoss() = 0;
  virtual long long skippedSteps() = 0;
  virtual float lossScale() = 0;
  virtual MemoryReport memory() = 0;
  virtual void setProfiling(bool on) = 0;
  virtual std::vector<std::pair<std::string, double>> phaseTimes() = 0;
  virtual void dispose() = 0;
  /**
   * Joins a data-parallel job (NCCL): later training steps sum gradients over its ranks. With
   * `timeoutSeconds` > 0, a wait for work that needs the other ranks gives up after that long:
   * the communicator is aborted and an Error says that another rank died or hangs.
   */
  virtual void joinWorld(const unsigned char* id, int rank, int size, double timeoutSeconds) = 0;
  /** Copies every parameter and optimizer slot of `root` to every rank. */
  virtual void broadcastState(int root) = 0;
  /** How each table's gradients travel between ranks. */
  virtual std::vector<TableExchangeOut> exchangePlan() = 0;
};

/** A new NCCL unique id (rank 0 makes it and hands it to the others). */
std::vector<unsigned char> worldUniqueId();

/** Builds the model on `device`; cuBLASLt must be loaded. */
std::unique_ptr<Model> createModel(const Plan& plan, int device);

}  // namespace wndc
