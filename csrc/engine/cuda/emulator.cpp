#include "engine/cuda/emulator.h"

#include <algorithm>
#include <climits>
#include <limits>
#include <memory>
#include <stdexcept>

namespace lenet::cuda {

namespace {

void set_activation(const Model& m, int& act, float& amp, float& slope, float& add) {
  act = m.activation == Activation::Relu ? kActRelu : kActTanhLike;
  amp = 1.f, slope = 1.f, add = 0.f;
  if (m.activation == Activation::ScaledTanh) {
    amp = 1.7159f, slope = 2.f / 3.f, add = 0.f;
  } else if (m.activation == Activation::Sigmoid) {
    amp = 0.5f, slope = 0.5f, add = 0.5f;  // sigmoid(a) = (1 + tanh(a/2)) / 2
  }
}

// [units][k] row-major -> [k][ld] with zero columns beyond `units`.
std::vector<float> transpose_pad(const std::vector<float>& w, int units, int k, int ld) {
  std::vector<float> t(size_t(k) * ld, 0.f);
  for (int u = 0; u < units; ++u)
    for (int i = 0; i < k; ++i) t[size_t(i) * ld + u] = w[size_t(u) * k + i];
  return t;
}

std::vector<float> pad(const std::vector<float>& v, size_t n) {
  std::vector<float> out(n, 0.f);
  std::copy(v.begin(), v.end(), out.begin());
  return out;
}

}  // namespace

PackedModel pack_model(const Model& m) {
  validate(m);
  PackedModel pk;
  SubsampleParams& s = pk.sub;
  set_activation(m, s.act, s.act_amp, s.act_slope, s.act_add);
  s.pooling = m.pooling == Pooling::Trainable ? kPoolTrainable
              : m.pooling == Pooling::Avg     ? kPoolAvg
                                              : kPoolMax;
  s.input_size = m.input_size;
  s.c1_pad = m.c1_padding;
  s.pre_pad = m.pre.pad;
  s.pre_invert = m.pre.invert ? 1 : 0;
  s.pre_scale = m.pre.scale;
  s.pre_offset = m.pre.offset;
  std::copy(m.c1_w.begin(), m.c1_w.end(), s.c1_w);
  std::copy(m.c1_b.begin(), m.c1_b.end(), s.c1_b);
  std::copy(m.c3_w.begin(), m.c3_w.end(), s.c3_w);
  std::copy(m.c3_b.begin(), m.c3_b.end(), s.c3_b);
  const bool trainable = m.pooling == Pooling::Trainable;
  for (int i = 0; i < kMaps1; ++i) {
    s.s2_coef[i] = trainable ? m.s2_coef[i] : 0.f;
    s.s2_bias[i] = trainable ? m.s2_bias[i] : 0.f;
  }
  for (int o = 0; o < kMaps3; ++o) {
    s.s4_coef[o] = trainable ? m.s4_coef[o] : 0.f;
    s.s4_bias[o] = trainable ? m.s4_bias[o] : 0.f;
    s.c3_fan_in[o] = 0;
    for (int i = 0; i < kMaps1; ++i) {
      s.c3_inputs[o][i] = 0;
      if (m.c3_connected[o * kMaps1 + i]) s.c3_inputs[o][s.c3_fan_in[o]++] = i;
    }
  }

  HeadParams& h = pk.head;
  set_activation(m, h.act, h.act_amp, h.act_slope, h.act_add);
  h.rbf = m.head == Head::Rbf ? 1 : 0;
  h.classes = m.num_classes;
  h.out_u = m.num_classes <= kHeadUnitGroups ? 1 : kHeadU;
  const int cols = kHeadUnitGroups * h.out_u;
  h.out_pad = (m.num_classes + cols - 1) / cols * cols;
  pk.c5_wt = transpose_pad(m.c5_w, kC5, kS4Len, kC5Pad);
  pk.c5_b = pad(m.c5_b, kC5Pad);
  pk.f6_wt = transpose_pad(m.f6_w, kF6, kC5, kF6Pad);
  pk.f6_b = pad(m.f6_b, kF6Pad);
  pk.out_wt = transpose_pad(m.out_w, m.num_classes, kF6, h.out_pad);
  pk.out_b = pad(m.head == Head::Linear ? m.out_b : std::vector<float>{}, size_t(h.out_pad));
  return pk;
}

HeadParams host_head_params(const PackedModel& pk) {
  HeadParams h = pk.head;
  h.c5_wt = pk.c5_wt.data();
  h.c5_b = pk.c5_b.data();
  h.f6_wt = pk.f6_wt.data();
  h.f6_b = pk.f6_b.data();
  h.out_wt = pk.out_wt.data();
  h.out_b = pk.out_b.data();
  return h;
}

namespace {

// One block on the host: per-thread registers live in an array; a phase runs for every thread
// before the next phase starts (the barrier).
template <class Regs>
struct HostExec {
  std::vector<Regs> regs;
  ThreadOrder order;
  HostExec(int threads, ThreadOrder o) : regs(size_t(threads)), order(o) {}
  template <class F>
  void phase(F&& f) {
    const int t = int(regs.size());
    if (order == ThreadOrder::Forward)
      for (int tid = 0; tid < t; ++tid) f(tid, regs[size_t(tid)]);
    else
      for (int tid = t - 1; tid >= 0; --tid) f(tid, regs[size_t(tid)]);
  }
};

// Shared memory starts as garbage on the GPU; poison it so a read-before-write shows up.
template <class T>
void poison(T& sh) {
  float* p = reinterpret_cast<float*>(&sh);
  std::fill(p, p + sizeof(T) / sizeof(float), std::numeric_limits<float>::quiet_NaN());
}

// The head's grid for one launch, with the tile and output width the engine would launch.
template <int OutU, int Images>
void emulate_head(const HeadParams& head, const float* s4, int64_t n, float* out, ThreadOrder order) {
  auto sh = std::make_unique<HeadShared<Images>>();
  for (int64_t blk = 0; blk < head_blocks(n, Images); ++blk) {
    poison(*sh);
    HostExec<HeadRegs<Images>> ex(head_threads(Images), order);
    head_program<OutU>(ex, head, s4, n, blk * Images, *sh, out);
  }
}

}  // namespace

int64_t emulate_scores(const Model& model, const InputBatch& batch, float* scores,
                       ThreadOrder order, int64_t chunk, int head_images) {
  if (head_images != kHeadImages && head_images != kHeadSmallImages)
    throw std::invalid_argument("head tile must be 16 or 32 images");
  const int64_t total = batch.n;
  if (total <= 0) return -1;
  if (batch.size != model.input_size && !(batch.u8 && batch.size == 28))
    throw std::invalid_argument("image size does not match the model input");
  if (total > INT_MAX) throw std::invalid_argument("batch too large for the emulator");
  if (chunk <= 0) chunk = total;
  const PackedModel pk = pack_model(model);
  const HeadParams head = host_head_params(pk);
  const size_t px = size_t(batch.size) * batch.size;
  int first_bad = INT_MAX;  // shared by the launches, as the engine's device flag is
  auto sub_sh = std::make_unique<SubShared>();
  std::vector<float> s4;
  for (int64_t base = 0; base < total; base += chunk) {
    const int64_t n = std::min(chunk, total - base);
    const InputView in{batch.u8 ? batch.u8 + base * px : nullptr,
                       batch.u8 ? nullptr : batch.f32 + base * px, n, batch.size, base};
    s4.assign(size_t(n) * kS4Len, std::numeric_limits<float>::quiet_NaN());
    // Grid of fused_subsample, then grid of fused_rbf (stream order).
    for (int64_t blk = 0; blk < subsample_blocks(n); ++blk) {
      poison(*sub_sh);
      HostExec<NoRegs> ex(kSubThreads, order);
      subsample_program(ex, pk.sub, in, blk * kSubImages, *sub_sh, s4.data(), &first_bad);
    }
    float* out = scores + base * model.num_classes;
    const bool small = head_images == kHeadSmallImages;
    if (head.out_u == 1)
      small ? emulate_head<1, kHeadSmallImages>(head, s4.data(), n, out, order)
            : emulate_head<1, kHeadImages>(head, s4.data(), n, out, order);
    else
      small ? emulate_head<kHeadU, kHeadSmallImages>(head, s4.data(), n, out, order)
            : emulate_head<kHeadU, kHeadImages>(head, s4.data(), n, out, order);
  }
  return first_bad == INT_MAX ? -1 : first_bad;
}

}  // namespace lenet::cuda
