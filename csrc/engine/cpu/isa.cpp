#include "engine/cpu/isa.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace lenet {

namespace {

Isa cpu_isa() {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
#if LENET_HAVE_AVX512
  if (__builtin_cpu_supports("avx512f")) return Isa::Avx512;
#endif
#if LENET_HAVE_AVX2
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
#endif
#endif
  return Isa::Baseline;
}

}  // namespace

Isa detect_isa() {
  const Isa isa = cpu_isa();
  const char* cap = std::getenv("LENET_MAX_CPU_ISA");
  if (!cap || !*cap) return isa;
  const std::string c = cap;
  Isa limit;
  if (c == "avx512") limit = Isa::Avx512;
  else if (c == "avx2") limit = Isa::Avx2;
  else if (c == "baseline") limit = Isa::Baseline;
  else throw std::invalid_argument("LENET_MAX_CPU_ISA='" + c + "': expected avx512, avx2 or baseline");
  return int(limit) < int(isa) ? limit : isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "baseline";
  }
}

Isa require_isa(Isa wanted) {
  const Isa have = detect_isa();
  if (int(wanted) > int(have))
    throw std::invalid_argument(std::string("isa '") + isa_name(wanted) + "' is not available here: " +
                                "this CPU and build run at most '" + isa_name(have) + "'");
  return wanted;
}

}  // namespace lenet
