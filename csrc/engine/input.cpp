#include "engine/input.h"

#include <stdexcept>

namespace lenet {

namespace {

// Python's tuple notation, so messages read the same as the wrapper's own.
std::string shape_str(const ArrayDesc& x) {
  std::string s = "(";
  for (int d = 0; d < x.ndim; ++d) s += (d ? ", " : "") + std::to_string(x.shape[d]);
  return s + (x.ndim == 1 ? ",)" : ")");
}

[[noreturn]] void refuse(const std::string& why) { throw std::invalid_argument(why); }

}  // namespace

InputBatch check_input(const Model& m, const ArrayDesc& x) {
  // Message parts, built only when an array is refused (the accepted path allocates nothing).
  const auto size = [&] { return std::to_string(m.input_size); };
  const auto square = [&] { return size() + "x" + size(); };
  if (x.ndim < 0 || (x.ndim > 0 && !x.shape)) refuse("input has no shape");
  InputBatch b;
  if (x.type == PixelType::U8) {
    if (x.ndim == 4 && x.shape[1] != 1)
      refuse("expected 1 channel, got " + std::to_string(x.shape[1]) + " (shape " + shape_str(x) + ")");
    if (x.ndim != 3 && x.ndim != 4)
      refuse("uint8 input must have rank 3 [N, H, W] (or [N, 1, H, W]); got rank " +
             std::to_string(x.ndim) + ", shape " + shape_str(x));
    const int64_t h = x.shape[x.ndim - 2], w = x.shape[x.ndim - 1];
    if (h != w || (h != 28 && h != m.input_size))
      refuse("uint8 images must be 28x28 or " + square() + "; got shape " + shape_str(x));
    b.u8 = static_cast<const uint8_t*>(x.data);
  } else if (x.type == PixelType::F32) {
    if (x.ndim != 4)
      refuse("float32 input must have rank 4 [N, 1, " + size() + ", " + size() + "]; got rank " +
             std::to_string(x.ndim) + ", shape " + shape_str(x));
    if (x.shape[1] != 1)
      refuse("expected 1 channel, got " + std::to_string(x.shape[1]) + " (shape " + shape_str(x) + ")");
    if (x.shape[2] != m.input_size || x.shape[3] != m.input_size)
      refuse("float32 images must be " + square() + " (normalized model input); got shape " + shape_str(x));
    b.f32 = static_cast<const float*>(x.data);
  } else {
    refuse("expected uint8 raw pixels or float32 normalized input; got dtype " + x.dtype);
  }
  if (!x.contiguous) refuse("expected a C-contiguous array (shape " + shape_str(x) + ")");
  b.n = x.shape[0];
  b.size = int(x.shape[x.ndim - 1]);
  return b;
}

}  // namespace lenet
