// The INT8 CPU engine's Python class: lenet.quant's arrays into a QuantModel.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/bindings/bindings.h"
#include "engine/cpu/int8/int8_engine.h"

namespace lenet::bindings {

namespace {

using cpu::int8::Int8Engine;
using cpu::int8::Int8Isa;
using cpu::int8::QuantLayer;
using cpu::int8::QuantModel;

template <class T>
std::vector<T> array(const py::dict& d, const std::string& name) {
  if (!d.contains(name)) throw std::invalid_argument("int8 arrays lack '" + name + "'");
  const py::array a = py::cast<py::array>(d[py::str(name)]);
  if (!a.dtype().is(py::dtype::of<T>()))
    throw std::invalid_argument("int8 array '" + name + "' has dtype " + std::string(py::str(a.dtype())) +
                                "; expected " + std::string(py::str(py::dtype::of<T>())));
  const auto c = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(a);
  return std::vector<T>(c.data(), c.data() + c.size());
}

template <class T>
T scalar(const py::dict& d, const std::string& name) {
  const std::vector<T> v = array<T>(d, name);
  if (v.size() != 1) throw std::invalid_argument("int8 array '" + name + "' must hold one value");
  return v[0];
}

QuantLayer layer(const py::dict& d, const std::string& name) {
  QuantLayer l;
  l.weight = array<int8_t>(d, name + ".weight");
  l.bias = array<int32_t>(d, name + ".bias");
  l.multiplier = array<float>(d, name + ".multiplier");
  const std::vector<uint8_t> t = array<uint8_t>(d, name + ".table");
  if (t.size() != l.table.size()) throw std::invalid_argument("int8 array '" + name + ".table' must hold 256 values");
  std::copy(t.begin(), t.end(), l.table.begin());
  return l;
}

Int8Isa parse_int8_isa(const std::string& s) {
  if (s.empty()) return cpu::int8::detect_int8_isa();
  if (s == "avx512vnni") return Int8Isa::Avx512Vnni;
  if (s == "avx512bw") return Int8Isa::Avx512Bw;
  throw std::invalid_argument("unknown int8 isa '" + s + "'; expected avx512vnni or avx512bw");
}

}  // namespace

void register_int8(py::module_& m) {
  py::class_<Int8Engine, std::shared_ptr<Int8Engine>>(m, "Int8Engine")
      .def(py::init([](const py::dict& spec, const py::dict& weights, py::array_t<uint8_t> connected,
                       const py::dict& q, int threads, const std::string& isa) {
             QuantModel qm;
             qm.spec = model_from_python(spec, weights, connected);
             qm.input_scale = scalar<float>(q, "input.scale");
             qm.input_zero = scalar<int32_t>(q, "input.zero_point");
             qm.conv1 = layer(q, "conv1");
             qm.pool2 = layer(q, "pool2");
             qm.conv3 = layer(q, "conv3");
             qm.pool4 = layer(q, "pool4");
             qm.conv5 = layer(q, "conv5");
             qm.fc6 = layer(q, "fc6");
             qm.head_scale = scalar<float>(q, "head.scale");
             qm.prototypes = array<float>(q, "head.prototypes");
             const Int8Isa chosen = parse_int8_isa(isa);
             return std::make_shared<Int8Engine>(qm, threads, chosen);
           }),
           py::arg("spec"), py::arg("weights"), py::arg("c3_connected"), py::arg("quant"),
           py::arg("threads") = 0, py::arg("isa") = "")
      .def("scores",
           [](const Int8Engine& e, const py::array& x) {
             return host_scores(e.model(), x, [&](const InputBatch& b, float* out) { return e.scores(b, out); });
           },
           py::arg("x"))
      .def_property_readonly("threads", &Int8Engine::threads)
      .def_property_readonly("isa", [](const Int8Engine& e) { return cpu::int8::int8_isa_name(e.isa()); })
      .def_property_readonly("lanes", &Int8Engine::lanes)
      .def_property_readonly("precision", [](const Int8Engine&) { return "int8"; })
      .def_property_readonly("num_classes", [](const Int8Engine& e) { return e.model().num_classes; })
      .def_property_readonly("input_size", [](const Int8Engine& e) { return e.model().input_size; });
}

}  // namespace lenet::bindings
