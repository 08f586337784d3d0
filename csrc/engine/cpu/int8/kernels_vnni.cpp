// The INT8 kernels for AVX-512 VNNI + VBMI (per-file flags in sources.cmake).
#define LENET_I8_NS vnni
#define LENET_I8_VNNI 1
#include "engine/cpu/int8/kernels_impl.h"

namespace lenet::cpu::int8 {

const KernelSet& kernels_vnni() {
  static const KernelSet set{Int8Isa::Avx512Vnni, 16, 8, vnni::kScratchBytes, vnni::run_block<vnni::V16>,
                               vnni::run_block<vnni::V8>, vnni::run_single};
  return set;
}

}  // namespace lenet::cpu::int8
