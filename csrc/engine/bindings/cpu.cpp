// The CPU engine's Python class.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "engine/bindings/bindings.h"
#include "engine/cpu/cpu_engine.h"
#include "engine/cpu/isa.h"

namespace lenet::bindings {

namespace {

using cpu::CpuEngine;

Isa parse_isa(const std::string& s) {
  if (s.empty()) return detect_isa();
  if (s == "avx512") return Isa::Avx512;
  if (s == "avx2") return Isa::Avx2;
  if (s == "baseline") return Isa::Baseline;
  throw std::invalid_argument("unknown isa '" + s + "'; expected avx512, avx2 or baseline");
}

}  // namespace

void register_cpu(py::module_& m) {
  py::class_<CpuEngine, std::shared_ptr<CpuEngine>>(m, "CpuEngine")
      .def(py::init([](const py::dict& spec, const py::dict& weights, py::array_t<uint8_t> connected,
                       int threads, const std::string& isa) {
             return std::make_shared<CpuEngine>(model_from_python(spec, weights, connected), threads,
                                                parse_isa(isa));
           }),
           py::arg("spec"), py::arg("weights"), py::arg("c3_connected"), py::arg("threads") = 0,
           py::arg("isa") = "")
      .def("scores",
           [](const CpuEngine& e, const py::array& x) {
             return host_scores(e.model(), x, [&](const InputBatch& b, float* out) {
               return e.scores(b, out);
             });
           },
           py::arg("x"))
      .def_property_readonly("threads", &CpuEngine::threads)
      .def_property_readonly("isa", [](const CpuEngine& e) { return isa_name(e.isa()); })
      .def_property_readonly("lanes", &CpuEngine::lanes)
      .def_property_readonly("small_batch_limit", &CpuEngine::small_batch_limit)
      .def_property_readonly("num_classes", [](const CpuEngine& e) { return e.model().num_classes; })
      .def_property_readonly("input_size", [](const CpuEngine& e) { return e.model().input_size; });
}

}  // namespace lenet::bindings
