// The only file that knows pybind11: builds a Model from the Python loaders' arrays, wraps the
// CPU engine, and releases the GIL around compute.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "engine/cpu/cpu_engine.h"
#include "engine/cpu/isa.h"
#include "engine/model.h"

namespace py = pybind11;
using lenet::Model;
using lenet::cpu::CpuEngine;

namespace {

using f32_array = py::array_t<float, py::array::c_style | py::array::forcecast>;

std::string str_field(const py::dict& d, const char* key) {
  if (!d.contains(key)) throw std::invalid_argument(std::string("spec is missing '") + key + "'");
  return py::cast<std::string>(d[key]);
}

int int_field(const py::dict& d, const char* key) {
  if (!d.contains(key)) throw std::invalid_argument(std::string("spec is missing '") + key + "'");
  return py::cast<int>(d[key]);
}

std::vector<float> weight(const py::dict& w, const char* name, bool required = true) {
  if (!w.contains(name)) {
    if (required) throw std::invalid_argument(std::string("missing weight '") + name + "'");
    return {};
  }
  f32_array a = py::cast<f32_array>(w[name]);
  return std::vector<float>(a.data(), a.data() + a.size());
}

Model make_model(const py::dict& spec, const py::dict& w, py::array_t<uint8_t> connected) {
  Model m;
  m.arch = str_field(spec, "arch");
  m.input_size = int_field(spec, "input_size");
  m.c1_padding = int_field(spec, "c1_padding");
  m.num_classes = int_field(spec, "num_classes");
  const std::string act = str_field(spec, "activation"), pool = str_field(spec, "pooling"),
                    table = str_field(spec, "c3_table"), head = str_field(spec, "head");
  if (act == "scaled_tanh") m.activation = lenet::Activation::ScaledTanh;
  else if (act == "sigmoid") m.activation = lenet::Activation::Sigmoid;
  else if (act == "relu") m.activation = lenet::Activation::Relu;
  else throw std::invalid_argument("unknown activation '" + act + "'");
  if (pool == "trainable") m.pooling = lenet::Pooling::Trainable;
  else if (pool == "avg") m.pooling = lenet::Pooling::Avg;
  else if (pool == "max") m.pooling = lenet::Pooling::Max;
  else throw std::invalid_argument("unknown pooling '" + pool + "'");
  if (table != "lecun" && table != "full") throw std::invalid_argument("unknown c3_table '" + table + "'");
  m.lecun_table = table == "lecun";
  if (head == "rbf") m.head = lenet::Head::Rbf;
  else if (head == "linear") m.head = lenet::Head::Linear;
  else throw std::invalid_argument("unknown head '" + head + "'");
  if (!spec.contains("preprocessing")) throw std::invalid_argument("spec is missing 'preprocessing'");
  const py::dict pre = py::cast<py::dict>(spec["preprocessing"]);
  const std::string ink = str_field(pre, "ink");
  if (ink != "white_on_black" && ink != "black_on_white")
    throw std::invalid_argument("unknown preprocessing.ink '" + ink + "'");
  m.pre.invert = ink == "black_on_white";
  m.pre.pad = int_field(pre, "pad");
  m.pre.scale = py::cast<float>(pre["scale"]);
  m.pre.offset = py::cast<float>(pre["offset"]);

  m.c1_w = weight(w, "c1.weight");
  m.c1_b = weight(w, "c1.bias");
  const bool trainable = m.pooling == lenet::Pooling::Trainable;
  m.s2_coef = weight(w, "s2.coef", trainable);
  m.s2_bias = weight(w, "s2.bias", trainable);
  m.c3_w = weight(w, "c3.weight");
  m.c3_b = weight(w, "c3.bias");
  m.s4_coef = weight(w, "s4.coef", trainable);
  m.s4_bias = weight(w, "s4.bias", trainable);
  m.c5_w = weight(w, "c5.weight");
  m.c5_b = weight(w, "c5.bias");
  m.f6_w = weight(w, "f6.weight");
  m.f6_b = weight(w, "f6.bias");
  if (m.head == lenet::Head::Rbf) {
    m.out_w = weight(w, "output.prototypes");
  } else {
    m.out_w = weight(w, "output.weight");
    m.out_b = weight(w, "output.bias");
  }
  if (connected.ndim() != 2 || connected.shape(0) != lenet::kC3Maps || connected.shape(1) != lenet::kC1Maps)
    throw std::invalid_argument("c3_connected must be a [16, 6] array");
  auto c = connected.unchecked<2>();
  for (int o = 0; o < lenet::kC3Maps; ++o)
    for (int i = 0; i < lenet::kC1Maps; ++i) m.c3_connected[o * lenet::kC1Maps + i] = c(o, i) ? 1 : 0;
  lenet::validate(m);
  return m;
}

lenet::Isa parse_isa(const std::string& s) {
  if (s.empty()) return lenet::detect_isa();
  if (s == "avx512") return lenet::Isa::Avx512;
  if (s == "avx2") return lenet::Isa::Avx2;
  if (s == "baseline") return lenet::Isa::Baseline;
  throw std::invalid_argument("unknown isa '" + s + "'; expected avx512, avx2 or baseline");
}

// x: C-contiguous uint8 or float32 [N, S, S] (the Python wrapper normalizes rank and layout).
py::array_t<float> run_scores(const CpuEngine& engine, const py::array& x) {
  if (x.ndim() != 3) throw std::invalid_argument("expected a [N, H, W] array");
  if (!(x.flags() & py::array::c_style)) throw std::invalid_argument("expected a C-contiguous array");
  const int64_t n = x.shape(0);
  const int64_t h = x.shape(1), wdt = x.shape(2);
  const Model& m = engine.model();
  lenet::InputBatch batch;
  batch.n = n;
  batch.size = int(h);
  if (h != wdt) throw std::invalid_argument("images must be square");
  if (x.dtype().is(py::dtype::of<uint8_t>())) {
    if (h != 28 && h != m.input_size)
      throw std::invalid_argument("uint8 images must be 28x28 or " + std::to_string(m.input_size) + "x" +
                                  std::to_string(m.input_size));
    batch.u8 = static_cast<const uint8_t*>(x.data());
  } else if (x.dtype().is(py::dtype::of<float>())) {
    if (h != m.input_size)
      throw std::invalid_argument("float32 images must be " + std::to_string(m.input_size) + "x" +
                                  std::to_string(m.input_size));
    batch.f32 = static_cast<const float*>(x.data());
  } else {
    throw std::invalid_argument("expected uint8 or float32 pixels");
  }
  py::array_t<float> out({n, int64_t(m.num_classes)});
  if (n == 0) return out;
  float* dst = out.mutable_data();
  int64_t bad;
  {
    py::gil_scoped_release release;
    bad = engine.scores(batch, dst);
  }
  if (bad >= 0)
    throw std::invalid_argument("input image " + std::to_string(bad) + " contains NaN or Inf");
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "lenet_ext native core";
  m.attr("__version__") = LENET_VERSION;
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  m.def("build_info", [] {
    py::dict info;
    info["version"] = LENET_VERSION;
#ifdef LENET_WITH_CUDA
    info["cuda"] = true;
#else
    info["cuda"] = false;
#endif
    info["cuda_devices"] = 0;
    info["cpu_isa"] = lenet::isa_name(lenet::detect_isa());
    return info;
  });

  py::class_<CpuEngine, std::shared_ptr<CpuEngine>>(m, "CpuEngine")
      .def(py::init([](const py::dict& spec, const py::dict& weights, py::array_t<uint8_t> connected,
                       int threads, const std::string& isa) {
             return std::make_shared<CpuEngine>(make_model(spec, weights, connected), threads,
                                                parse_isa(isa));
           }),
           py::arg("spec"), py::arg("weights"), py::arg("c3_connected"), py::arg("threads") = 0,
           py::arg("isa") = "")
      .def("scores", &run_scores, py::arg("x"))
      .def_property_readonly("threads", &CpuEngine::threads)
      .def_property_readonly("isa", [](const CpuEngine& e) { return lenet::isa_name(e.isa()); })
      .def_property_readonly("lanes", &CpuEngine::lanes)
      .def_property_readonly("small_batch_limit", &CpuEngine::small_batch_limit)
      .def_property_readonly("num_classes", [](const CpuEngine& e) { return e.model().num_classes; })
      .def_property_readonly("input_size", [](const CpuEngine& e) { return e.model().input_size; });
}
