// The optimizers' update rules on the device: the float32 operations of runtime/optim/optimizers.ts
// in the same order. The addon is compiled with --fmad=false, so no multiply-add is fused and every
// +, -, *, / and sqrtf is rounded as in the JavaScript reference (bit for bit; only FTRL with a
// learning_rate_power other than -0.5 uses powf, which is not correctly rounded).
#pragma once

#include "kernels.cuh"

namespace wndc {

__device__ __forceinline__ float tfSign(float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f); }

/** Updates weight w (and its slots s0, s1) with gradient g. */
__device__ __forceinline__ void optimizerUpdate(const OptimizerArgs& o, float& w, float* s0, float* s1, float g) {
  const OptimizerConfig& c = o.config;
  switch (c.kind) {
    case OptimizerKind::Ftrl: {
      const float twoShrinkage = 2.0f * c.l2Shrinkage;
      const float twoL2 = 2.0f * c.l2;
      const float power = -c.learningRatePower;
      const float weight = w;
      const float n = *s0;
      const float gShrunk = g + twoShrinkage * weight;
      const float nNew = n + g * g;
      const float rateNew = power == 0.5f ? sqrtf(nNew) : powf(nNew, power);
      const float rateOld = power == 0.5f ? sqrtf(n) : powf(n, power);
      const float sigma = (rateNew - rateOld) / o.lr;
      const float z = *s1 + (gShrunk - sigma * weight);
      const float quadratic = rateNew / o.lr + twoL2;
      *s1 = z;
      *s0 = nNew;
      w = fabsf(z) > c.l1 ? (tfSign(z) * c.l1 - z) / quadratic : 0.0f;
      break;
    }
    case OptimizerKind::ProximalAdagrad: {
      const float n = *s0 + g * g;
      const float a = o.lr / sqrtf(n);
      const float v = w - g * a;
      const float shrunk = fmaxf(fabsf(v) - a * c.l1, 0.0f);
      *s0 = n;
      w = (tfSign(v) * shrunk) / (1.0f + c.l2 * a);
      break;
    }
    case OptimizerKind::Adagrad: {
      const float n = *s0 + g * g;
      *s0 = n;
      w = w - (g * o.lr) / (sqrtf(n) + c.epsilon);
      break;
    }
    case OptimizerKind::Adam: {
      const float oneMinusBeta1 = 1.0f - c.beta1;
      const float oneMinusBeta2 = 1.0f - c.beta2;
      const float m = *s0 + (g - *s0) * oneMinusBeta1;
      const float v = *s1 + (g * g - *s1) * oneMinusBeta2;
      *s0 = m;
      *s1 = v;
      w = w - (m * o.adamStep) / (sqrtf(v) + c.epsilon);
      break;
    }
    case OptimizerKind::Sgd: {
      if (c.momentum == 0.0f) {
        w = w - g * o.lr;
        break;
      }
      const float a = *s0 * c.momentum + g;
      *s0 = a;
      w = c.nesterov ? w - (g * o.lr + (a * c.momentum) * o.lr) : w - a * o.lr;
      break;
    }
  }
}

}  // namespace wndc
