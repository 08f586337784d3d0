#pragma once
// The input rules of every entry point (CPU engine, CUDA engine on host or device memory, the CUDA
// emulator): one function, so a numpy array, a DLPack tensor and the emulator's batch are accepted
// or refused alike, with the same messages. The bindings only describe the caller's array.
#include <cstdint>
#include <string>

#include "engine/model.h"

namespace lenet {

enum class PixelType { U8, F32, Other };

// What a binding knows about the caller's array, whatever it came from.
struct ArrayDesc {
  PixelType type = PixelType::Other;
  std::string dtype;             // its dtype's name, for the message when it is refused
  int ndim = 0;
  const int64_t* shape = nullptr;
  bool contiguous = false;       // C order (size-1 axes may have any stride)
  const void* data = nullptr;
};

// Accepted batches:
//   uint8 raw pixels [N, H, W] or [N, 1, H, W], H = W = 28 or the spec's input_size;
//   float32 normalized input [N, 1, S, S], S = the spec's input_size;
// C-contiguous. Throws std::invalid_argument naming the rule the array breaks.
InputBatch check_input(const Model& model, const ArrayDesc& x);

}  // namespace lenet
