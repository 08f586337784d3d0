#include <cstdlib>
#include <stdexcept>
#include <string>

#include "engine/cpu/isa.h"
#include "engine/cpu/int8/kernels.h"

namespace lenet::cpu::int8 {

namespace {

bool cpu_has(const char* what) {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  const std::string w = what;
  if (w == "avx512f") return __builtin_cpu_supports("avx512f");
  if (w == "avx512bw") return __builtin_cpu_supports("avx512bw");
  if (w == "avx512vnni") return __builtin_cpu_supports("avx512vnni");
  if (w == "avx512vbmi") return __builtin_cpu_supports("avx512vbmi");
#endif
  (void)what;
  return false;
}

// What the running CPU and build lack for `isa`, or "" when it can run.
std::string missing(Int8Isa isa) {
#if LENET_HAVE_AVX512
  if (detect_isa() != Isa::Avx512) return "AVX-512 (LENET_MAX_CPU_ISA or this CPU rule it out)";
  std::string lack;
  for (const char* f : {"avx512f", "avx512bw"})
    if (!cpu_has(f)) lack += std::string(lack.empty() ? "" : ", ") + f;
  if (isa == Int8Isa::Avx512Vnni)
    for (const char* f : {"avx512vnni", "avx512vbmi"})
      if (!cpu_has(f)) lack += std::string(lack.empty() ? "" : ", ") + f;
  return lack;
#else
  (void)isa;
  return "an x86-64 build with AVX-512 kernels";
#endif
}

}  // namespace

const char* int8_isa_name(Int8Isa isa) { return isa == Int8Isa::Avx512Vnni ? "avx512vnni" : "avx512bw"; }

Int8Isa detect_int8_isa() {
  if (missing(Int8Isa::Avx512Vnni).empty()) return Int8Isa::Avx512Vnni;
  const std::string lack = missing(Int8Isa::Avx512Bw);
  if (lack.empty()) return Int8Isa::Avx512Bw;
  throw std::invalid_argument("precision='int8' needs AVX-512 F+BW (avx512bw) or VNNI (avx512vnni); "
                              "this CPU or build lacks " + lack);
}

Int8Isa require_int8_isa(Int8Isa wanted) {
  const std::string lack = missing(wanted);
  if (!lack.empty())
    throw std::invalid_argument(std::string("isa '") + int8_isa_name(wanted) +
                                "' is not available here: this CPU or build lacks " + lack);
  return wanted;
}

const KernelSet& int8_kernels_for(Int8Isa isa) {
#if LENET_HAVE_AVX512
  return require_int8_isa(isa) == Int8Isa::Avx512Vnni ? kernels_vnni() : kernels_avx512bw();
#else
  require_int8_isa(isa);
  throw std::logic_error("unreachable");
#endif
}

}  // namespace lenet::cpu::int8
