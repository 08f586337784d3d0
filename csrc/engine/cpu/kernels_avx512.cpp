// The CPU kernels compiled for avx512 (per-file flags in sources.cmake).
#define LENET_W 16
#define LENET_ISA_NS avx512
#include "engine/cpu/kernels_impl.h"

namespace lenet::cpu {

const KernelSet& kernels_avx512() {
  static const KernelSet set{Isa::Avx512, LENET_W, avx512::scratch_floats, avx512::run_wide,
                               avx512::kWideStages, avx512::kWideParts, avx512::run_wide_part,
                               avx512::run_small};
  return set;
}

}  // namespace lenet::cpu
