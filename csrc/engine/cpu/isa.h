#pragma once
#include <string>

namespace lenet {

// Instruction sets the CPU kernels are compiled for; the best one the running CPU supports is
// chosen at run time so a wheel built on one machine runs on any x86-64.
enum class Isa { Baseline, Avx2, Avx512 };

Isa detect_isa();
const char* isa_name(Isa isa);

}  // namespace lenet
