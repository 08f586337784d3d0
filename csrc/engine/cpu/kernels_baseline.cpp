// The CPU kernels compiled for baseline (per-file flags in sources.cmake).
#define LENET_W 4
#define LENET_ISA_NS baseline
#include "engine/cpu/kernels_impl.h"

namespace lenet::cpu {

const KernelSet& kernels_baseline() {
  static const KernelSet set{Isa::Baseline, LENET_W, baseline::scratch_floats, baseline::run_wide,
                               baseline::kWideStages, baseline::kWideParts, baseline::run_wide_part,
                               baseline::run_small};
  return set;
}

}  // namespace lenet::cpu
