// The CPU kernels compiled for avx2 (per-file flags in sources.cmake).
#define LENET_W 8
#define LENET_ISA_NS avx2
#include "engine/cpu/kernels_impl.h"

namespace lenet::cpu {

const KernelSet& kernels_avx2() {
  static const KernelSet set{Isa::Avx2, LENET_W, avx2::scratch_floats, avx2::run_wide,
                               avx2::kWideStages, avx2::kWideParts, avx2::run_wide_part,
                               avx2::run_small};
  return set;
}

}  // namespace lenet::cpu
