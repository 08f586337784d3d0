// Spec and weights from Python into a Model, and numpy batches described for the input rules.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "engine/bindings/bindings.h"

namespace lenet::bindings {

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

}  // namespace

Model model_from_python(const py::dict& spec, const py::dict& w, py::array_t<uint8_t> connected) {
  Model m;
  m.arch = str_field(spec, "arch");
  m.input_size = int_field(spec, "input_size");
  m.c1_padding = int_field(spec, "c1_padding");
  m.num_classes = int_field(spec, "num_classes");
  const std::string act = str_field(spec, "activation"), pool = str_field(spec, "pooling"),
                    table = str_field(spec, "c3_table"), head = str_field(spec, "head");
  if (act == "scaled_tanh") m.activation = Activation::ScaledTanh;
  else if (act == "sigmoid") m.activation = Activation::Sigmoid;
  else if (act == "relu") m.activation = Activation::Relu;
  else throw std::invalid_argument("unknown activation '" + act + "'");
  if (pool == "trainable") m.pooling = Pooling::Trainable;
  else if (pool == "avg") m.pooling = Pooling::Avg;
  else if (pool == "max") m.pooling = Pooling::Max;
  else throw std::invalid_argument("unknown pooling '" + pool + "'");
  if (table != "lecun" && table != "full") throw std::invalid_argument("unknown c3_table '" + table + "'");
  m.lecun_table = table == "lecun";
  if (head == "rbf") m.head = Head::Rbf;
  else if (head == "linear") m.head = Head::Linear;
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
  const bool trainable = m.pooling == Pooling::Trainable;
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
  if (m.head == Head::Rbf) {
    m.out_w = weight(w, "output.prototypes");
  } else {
    m.out_w = weight(w, "output.weight");
    m.out_b = weight(w, "output.bias");
  }
  if (connected.ndim() != 2 || connected.shape(0) != kC3Maps || connected.shape(1) != kC1Maps)
    throw std::invalid_argument("c3_connected must be a [16, 6] array");
  auto c = connected.unchecked<2>();
  for (int o = 0; o < kC3Maps; ++o)
    for (int i = 0; i < kC1Maps; ++i) m.c3_connected[o * kC1Maps + i] = c(o, i) ? 1 : 0;
  validate(m);
  return m;
}

InputBatch host_batch(const Model& model, const py::array& x) {
  ArrayDesc d;
  if (x.dtype().is(py::dtype::of<uint8_t>())) d.type = PixelType::U8;
  else if (x.dtype().is(py::dtype::of<float>())) d.type = PixelType::F32;
  // Only a refused array needs its dtype's name: str(dtype) runs Python code in numpy (about
  // 3 us, a fifth of a one-image call).
  if (d.type == PixelType::Other) d.dtype = py::str(x.dtype());
  d.ndim = int(x.ndim());
  static_assert(sizeof(py::ssize_t) == sizeof(int64_t), "shape is read as int64_t");
  d.shape = reinterpret_cast<const int64_t*>(x.shape());
  d.contiguous = (x.flags() & py::array::c_style) != 0;
  d.data = x.data();
  return check_input(model, d);
}

}  // namespace lenet::bindings
