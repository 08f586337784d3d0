#pragma once
// What the binding files share. The bindings are split by area, each the only file that knows
// pybind11 for its area: spec.cpp (spec + weights -> Model, numpy batches -> the input rules),
// cpu.cpp (CpuEngine), int8.cpp (Int8Engine), cuda.cpp (device status, the CUDA emulator, CudaEngine), module.cpp (the
// module itself: version, build_info, exception translation).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "engine/input.h"
#include "engine/model.h"

namespace lenet::bindings {

namespace py = pybind11;

// spec.cpp: a validated Model from the Python loaders' arrays (lenet_ext.loaders.model_arrays).
Model model_from_python(const py::dict& spec, const py::dict& weights, py::array_t<uint8_t> connected);
// spec.cpp: a numpy batch checked against the model's input rules (engine/input.h).
InputBatch host_batch(const Model& model, const py::array& x);

inline void raise_if_bad(int64_t bad) {
  if (bad >= 0)
    throw std::invalid_argument("input image " + std::to_string(bad) + " contains NaN or Inf");
}

// Scores of a numpy batch: checked, then `run(batch, out)` with the GIL released (it returns the
// first image holding NaN/Inf, or -1).
template <class Run>
py::array_t<float> host_scores(const Model& model, const py::array& x, Run&& run) {
  const InputBatch batch = host_batch(model, x);
  py::array_t<float> out({batch.n, int64_t(model.num_classes)});
  if (batch.n == 0) return out;
  float* dst = out.mutable_data();
  int64_t bad;
  {
    py::gil_scoped_release release;
    bad = run(batch, dst);
  }
  raise_if_bad(bad);
  return out;
}

void register_cpu(py::module_& m);   // cpu.cpp
void register_int8(py::module_& m);  // int8.cpp
void register_cuda(py::module_& m);  // cuda.cpp
py::dict cuda_info();                // cuda.cpp: what build_info reports about CUDA

}  // namespace lenet::bindings
