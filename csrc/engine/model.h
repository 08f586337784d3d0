#pragma once
// The network an engine runs: spec fields and weights, validated once at load time.
// Kernels only read a Model; loaders (the Python wrapper, through bindings/spec.cpp) fill it.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace lenet {

enum class Activation { ScaledTanh, Sigmoid, Relu };
enum class Pooling { Trainable, Avg, Max };
enum class Head { Rbf, Linear };

// Fixed layer sizes of the LeNet family (the table in docs/ARCHITECTURE.md). Every arch yields
// 28x28 C1 maps: input_size + 2*c1_padding = 32.
constexpr int kC1Maps = 6, kC1Size = 28, kS2Size = 14;
constexpr int kC3Maps = 16, kC3Size = 10, kS4Size = 5;
constexpr int kC5Units = 120, kF6Units = 84, kKernel = 5;

// The activation and pooling as the kernels (CPU, CUDA, emulator) switch on them.
enum ActKind : int { kActTanhLike = 0, kActRelu = 1 };
enum PoolKind : int { kPoolTrainable = 0, kPoolAvg = 1, kPoolMax = 2 };

// Every squash is add + amp * tanh(slope * a) (or ReLU): LeCun's 1.7159 tanh(2a/3), and the
// sigmoid as (1 + tanh(a/2)) / 2.
struct SquashForm {
  ActKind act;
  float amp, slope, add;
};
// (Out of line, in model.cpp: the per-ISA CPU objects must not carry inline copies.)
SquashForm squash_form(Activation a);
PoolKind pool_kind(Pooling p);

// uint8 pixel p -> offset + scale * ink, ink = p/255 (or 1 - p/255 when `invert`);
// `pad` background pixels on each side bring 28x28 images to input_size.
struct Preprocessing {
  bool invert = false;
  int pad = 0;
  float scale = 1.f;
  float offset = 0.f;
};

struct Model {
  std::string arch;
  int input_size = 32;   // 28 or 32
  int c1_padding = 0;    // input_size + 2*c1_padding == 32
  Activation activation = Activation::ScaledTanh;
  Pooling pooling = Pooling::Trainable;
  Head head = Head::Rbf;
  bool lecun_table = true;  // C3 reads only the maps of LeCun's Table I
  int num_classes = 10;
  Preprocessing pre;

  // Weights, float32, row-major. c3_w is dense [16][6][5][5] with exact zeros where the table
  // has no connection; c3_connected[o*6+i] says which (o, i) pairs exist so kernels skip the rest.
  std::vector<float> c1_w, c1_b;          // [6][1][5][5], [6]
  std::vector<float> s2_coef, s2_bias;    // [6] each, trainable pooling only
  std::vector<float> c3_w, c3_b;          // [16][6][5][5], [16]
  std::array<uint8_t, kC3Maps * kC1Maps> c3_connected{};
  std::vector<float> s4_coef, s4_bias;    // [16] each, trainable pooling only
  std::vector<float> c5_w, c5_b;          // [120][16][5][5], [120]
  std::vector<float> f6_w, f6_b;          // [84][120], [84]
  std::vector<float> out_w, out_b;        // [classes][84]; out_b [classes] for the linear head
};

// Throws std::invalid_argument naming the first inconsistency (weight sizes, geometry, head).
void validate(const Model& model);

// Weight packing steps every backend (CPU, CUDA, emulator) shares.
// [units][k] row-major -> [k][ld], zero columns beyond `units`: the layout in which a GEMM-like
// loop broadcasts one input and reads a contiguous row of output units.
std::vector<float> transpose_pad(const std::vector<float>& w, int units, int k, int ld);
// `v` followed by zeros up to `n` entries.
std::vector<float> zero_pad(const std::vector<float>& v, size_t n);
// C3's input lists from the connection table: fan_in[o] maps, inputs[o][0..fan_in[o]) their
// indices (entries beyond fan_in are 0).
void c3_input_lists(const Model& m, int fan_in[kC3Maps], int inputs[kC3Maps][kC1Maps]);

// A batch as kernels see it: contiguous, validated by the binding layer.
struct InputBatch {
  const uint8_t* u8 = nullptr;  // [n][size][size] raw pixels (preprocessing applied by the kernel), or
  const float* f32 = nullptr;   // [n][input_size][input_size] already normalized
  int64_t n = 0;
  int size = 0;                 // image side: 28 or input_size
};

}  // namespace lenet
