// Per-stage timings of the CPU engine's kernels (a benchmark tool, not shipped; built and run by
// tools/stage_timings.py). Includes the AVX-512 kernels the same way kernels_avx512.cpp does and
// times each fused stage of the wide path (16 images, one per lane) and of the small path (one
// image, positions in lanes) on one thread, and whole engine calls (a block of 16 and one image,
// on 1 and on 2 threads), with a lenet5 model of random weights packed by the
// real CpuEngine. Prints one JSON object: nanoseconds per call of each stage, best of N rounds.
#define LENET_W 16
#define LENET_ISA_NS avx512
#include "engine/cpu/kernels_impl.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "engine/cpu/cpu_engine.h"

using namespace lenet;
using namespace lenet::cpu;
using namespace lenet::cpu::avx512;

namespace {

Model random_lenet5() {
  Model m;
  m.arch = "lenet5";
  m.pre = Preprocessing{false, 2, 1.275f, -0.1f};
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> u(-0.2f, 0.2f);
  auto fill = [&](std::vector<float>& v, size_t n) { v.resize(n); for (auto& x : v) x = u(rng); };
  fill(m.c1_w, 150); fill(m.c1_b, 6);
  fill(m.s2_coef, 6); fill(m.s2_bias, 6);
  fill(m.c3_w, 16 * 6 * 25); fill(m.c3_b, 16);
  fill(m.s4_coef, 16); fill(m.s4_bias, 16);
  fill(m.c5_w, 120 * 400); fill(m.c5_b, 120);
  fill(m.f6_w, 84 * 120); fill(m.f6_b, 84);
  fill(m.out_w, 10 * 84);
  for (auto& x : m.out_w) x = x > 0 ? 1.f : -1.f;
  static const int table[16][6] = {{1,1,1,0,0,0},{0,1,1,1,0,0},{0,0,1,1,1,0},{0,0,0,1,1,1},
    {1,0,0,0,1,1},{1,1,0,0,0,1},{1,1,1,1,0,0},{0,1,1,1,1,0},{0,0,1,1,1,1},{1,0,0,1,1,1},
    {1,1,0,0,1,1},{1,1,1,0,0,1},{1,1,0,1,1,0},{0,1,1,0,1,1},{1,0,1,1,0,1},{1,1,1,1,1,1}};
  for (int o = 0; o < 16; ++o)
    for (int i = 0; i < 6; ++i) {
      m.c3_connected[o * 6 + i] = uint8_t(table[o][i]);
      if (!table[o][i]) for (int t = 0; t < 25; ++t) m.c3_w[(o * 6 + i) * 25 + t] = 0.f;
    }
  return m;
}

template <class F>
double best_ns(F&& f, int rounds = 7, int calls = 200) {
  double best = 1e300;
  for (int r = 0; r < rounds; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int c = 0; c < calls; ++c) f();
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double, std::nano>(t1 - t0).count() / calls);
  }
  return best;
}

}  // namespace

int main() {
  if (detect_isa() != Isa::Avx512) {
    std::fprintf(stderr, "stage_timings: this CPU has no AVX-512\n");
    return 2;
  }
  const CpuEngine engine(random_lenet5(), 1, Isa::Avx512);
  const KernelParams& kp = engine.kernel_params();
  const Act act(kp);
  std::vector<uint8_t> images(16 * 28 * 28);
  for (size_t i = 0; i < images.size(); ++i) images[i] = uint8_t((i * 37) % 256);
  InputBatch batch;
  batch.u8 = images.data();
  batch.n = 16;
  batch.size = 28;
  float* scratch = static_cast<float*>(std::aligned_alloc(64, (scratch_floats(kp) * 4 + 63) / 64 * 64));
  std::vector<float> scores(16 * 10);
  vf* s = reinterpret_cast<vf*>(scratch);
  run_wide(kp, batch, 0, 16, scratch, scores.data());  // fills every stage's input once

  std::printf("{\"isa\": \"avx512\", \"wide\": {");
  std::printf("\"pack\": %.0f, ", best_ns([&] { pack_wide(kp, batch, 0, 16, s + kWideIn); }));
  std::printf("\"c1_s2\": %.0f, ", best_ns([&] { c1_s2_wide(kp, act, s + kWideIn, s + kWideC1Rows, s + kWideS2); }));
  std::printf("\"c3_s4\": %.0f, ", best_ns([&] { c3_s4_wide(kp, act, s + kWideS2, s + kWideC3Rows, s + kWideS4); }));
  std::printf("\"head\": %.0f, ", best_ns([&] { head_wide(kp, act, s + kWideS4, s + kWideC5, s + kWideF6, s + kWideOut); }));
  std::printf("\"total\": %.0f}, ", best_ns([&] { run_wide(kp, batch, 0, 16, scratch, scores.data()); }));

  run_small(kp, batch, 0, scratch, scores.data());
  float* in = scratch + kSmallIn;
  std::printf("\"small\": {");
  std::printf("\"c1\": %.0f, ", best_ns([&] { c1_small(kp, act, in, scratch + kSmallC1); }));
  std::printf("\"s2\": %.0f, ", best_ns([&] { s2_small(kp, act, scratch + kSmallC1, scratch + kSmallS2); }));
  std::printf("\"spread\": %.0f, ", best_ns([&] { spread_s2(scratch + kSmallS2, scratch + kSmallS2T); }));
  std::printf("\"c3\": %.0f, ", best_ns([&] { c3_small_lecun(kp, act, scratch + kSmallS2T, scratch + kSmallC3); }));
  std::printf("\"s4\": %.0f, ", best_ns([&] { s4_small_lecun(kp, act, scratch + kSmallC3, scratch + kSmallS4); }));
  // The any-table C3 (dense over the maps, zeros where the table has none), for comparison.
  std::printf("\"c3_any_table\": %.0f, ", best_ns([&] { c3_small(kp, act, scratch + kSmallS2, scratch + kSmallC3); }));
  std::printf("\"c5\": %.0f, ", best_ns([&] {
    dense_small(scratch + kSmallS4, kC3Maps * 25, kp.c5_wt_pos, kC5Ld, kp.c5_b, kC5Ld, false, scratch + kSmallC5);
    squash_small(act, scratch + kSmallC5, kC5Ld); }));
  std::printf("\"f6\": %.0f, ", best_ns([&] {
    dense_small(scratch + kSmallC5, kC5Units, kp.f6_wt, kF6Ld, kp.f6_b, kF6Ld, false, scratch + kSmallF6);
    squash_small(act, scratch + kSmallF6, kF6Ld); }));
  std::printf("\"out\": %.0f, ", best_ns([&] {
    dense_small(scratch + kSmallF6, kF6Units, kp.out_wt, kp.out_ld, kp.out_b, kp.out_ld, true, scratch + kSmallOut); }));
  std::printf("\"total\": %.0f}, ", best_ns([&] { run_small(kp, batch, 0, scratch, scores.data()); }));
  std::printf("\"engine_call_1\": %.0f, ", best_ns([&] {
    InputBatch one = batch; one.n = 1; engine.scores(one, scores.data()); }));
  std::printf("\"engine_call_16\": %.0f, ", best_ns([&] { engine.scores(batch, scores.data()); }, 7, 50));
  // The same block shared by two threads stage by stage (CpuEngine::shared_block): about half
  // when the second core is free, no gain when something else keeps it busy.
  const CpuEngine engine2(random_lenet5(), 2, Isa::Avx512);
  std::printf("\"engine_call_16_2_threads\": %.0f, ",
              best_ns([&] { engine2.scores(batch, scores.data()); }, 7, 50));
  // How often the shared calls above stalled enough to back off to one thread for a while.
  std::printf("\"share_trips_2_threads\": %lld}\n", static_cast<long long>(engine2.share_trips()));
  std::free(scratch);
  return 0;
}
