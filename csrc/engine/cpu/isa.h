#pragma once
#include <string>

namespace lenet {

// Instruction sets the CPU kernels are compiled for; the best one the running CPU supports is
// chosen at run time so a wheel built on one machine runs on any x86-64.
enum class Isa { Baseline, Avx2, Avx512 };

// The best instruction set this CPU runs and this build carries kernels for. The environment
// variable LENET_MAX_CPU_ISA (avx512|avx2|baseline) caps it, e.g. to compare kernel sets on one
// machine or to keep AVX-512's clock penalty off a shared host.
Isa detect_isa();
const char* isa_name(Isa isa);
// The kernel set for `wanted` when detect_isa() allows it; otherwise std::invalid_argument naming
// the instruction set (a forced ISA never silently falls back to another one).
Isa require_isa(Isa wanted);

}  // namespace lenet
