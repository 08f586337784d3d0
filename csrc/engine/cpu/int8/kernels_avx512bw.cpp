// The INT8 kernels for AVX-512 F + BW without VNNI (per-file flags in sources.cmake).
#define LENET_I8_NS avx512bw
#define LENET_I8_VNNI 0
#include "engine/cpu/int8/kernels_impl.h"

namespace lenet::cpu::int8 {

const KernelSet& kernels_avx512bw() {
  static const KernelSet set{Int8Isa::Avx512Bw, 16, 8, avx512bw::kScratchBytes, avx512bw::run_block<avx512bw::V16>,
                               avx512bw::run_block<avx512bw::V8>, avx512bw::run_single};
  return set;
}

}  // namespace lenet::cpu::int8
