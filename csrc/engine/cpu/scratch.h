#pragma once
// The per-thread scratch memory the CPU kernels work in.
#include <cstddef>
#include <cstdlib>
#include <new>

namespace lenet::cpu {

// Per-thread, 64-byte aligned scratch shared by every engine on that thread (kernels only need it
// for the duration of one task).
struct Scratch {
  float* p = nullptr;
  size_t n = 0;
  Scratch() = default;
  ~Scratch() { std::free(p); }
  Scratch(const Scratch&) = delete;  // owns p: a copy would free it twice
  Scratch& operator=(const Scratch&) = delete;
  float* get(size_t floats) {
    if (floats > n) {
      std::free(p);
      const size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p) { n = 0; throw std::bad_alloc(); }
      n = floats;
    }
    return p;
  }
};
inline thread_local Scratch tls_scratch;

}  // namespace lenet::cpu
