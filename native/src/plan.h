// The model as the addon sees it: runtime/engine/cuda/addon-api.ts `NativePlan`, read from
// JavaScript by addon.cpp. Indices refer to `parameters`; -1 means absent.
#pragma once

#include <string>
#include <vector>

namespace wndc {

enum class Precision { Fp32, Tf32, Bf16, Fp16 };
enum class Combiner { Sum = 0, Mean = 1, Sqrtn = 2 };
enum class Activation { Linear = 0, Relu = 1, Tanh = 2, Sigmoid = 3, Gelu = 4 };
enum class ParameterKind { Table = 0, Dense = 1, Statistic = 2 };
enum class OptimizerKind { Ftrl = 0, ProximalAdagrad = 1, Adagrad = 2, Adam = 3, Sgd = 4 };

struct Parameter {
  std::string name;
  long long size = 0;
  long long rows = 0;
  int dim = 1;
  int part = 0;  // 0 wide, 1 deep
  ParameterKind kind = ParameterKind::Dense;
  int slots = 0;
};

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::Sgd;
  float l1 = 0, l2 = 0, l2Shrinkage = 0, learningRatePower = -0.5f, epsilon = 0, beta1 = 0, beta2 = 0, momentum = 0;
  bool nesterov = false;
};

struct Lookup {
  int table = -1;
  int idOffset = 0;
  int width = 1;
  int lengthSlot = -1;
  int weightOffset = -1;
  Combiner combiner = Combiner::Sum;
  int outOffset = -1;
};

struct Piece {
  enum Kind { Embedding, Indicator, Numeric } kind = Embedding;
  Lookup lookup;              // Embedding; for Indicator: idOffset/width/lengthSlot/weightOffset/outOffset
  int buckets = 0;            // Indicator
  std::vector<int> sourceColumns;  // Numeric
  int outOffset = 0;
};

struct Layer {
  int kernel = -1, bias = -1, gamma = -1, beta = -1, movingMean = -1, movingVariance = -1;
  int inputs = 0, units = 0;
  Activation activation = Activation::Linear;
  bool hidden = false;
};

struct Plan {
  Precision precision = Precision::Tf32;
  float lossScaleInitial = 32768.0f;
  int lossScaleGrowthInterval = 2000;
  int batchCapacity = 0;
  int idsWidth = 0, lengthsWidth = 0, weightsWidth = 0, numericWidth = 0;
  bool weighted = false;
  unsigned long long seed = 0;
  std::vector<Parameter> parameters;
  OptimizerConfig optimizers[2];
  int wideBias = -1, wideNumeric = -1;
  std::vector<int> wideNumericColumns;
  std::vector<Lookup> wideLookups;
  int deepInputWidth = 0;
  std::vector<Piece> pieces;
  std::vector<Layer> layers;
  float dropout = 0;
  float batchNormMomentum = 0.999f, batchNormEpsilon = 0.001f;
};

}  // namespace wndc
