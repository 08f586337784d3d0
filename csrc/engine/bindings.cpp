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
#include "engine/cuda/device.h"
#include "engine/cuda/emulator.h"
#include "engine/model.h"
#include "engine/cuda/dlpack.h"
#ifdef LENET_WITH_CUDA
#include "engine/cuda/cuda_engine.h"
#endif

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


// ---- CUDA backend: the host emulator (every build) and the CUDA engine (nvcc builds) ----------

// A C-contiguous uint8 [N, 28|S, same] or float32 [N, S, S] numpy batch (the wrapper normalizes).
lenet::InputBatch host_batch(const py::array& x, const Model& m) {
  if (x.ndim() != 3) throw std::invalid_argument("expected a [N, H, W] array");
  if (!(x.flags() & py::array::c_style)) throw std::invalid_argument("expected a C-contiguous array");
  if (x.shape(1) != x.shape(2)) throw std::invalid_argument("images must be square");
  lenet::InputBatch b;
  b.n = x.shape(0);
  b.size = int(x.shape(1));
  if (x.dtype().is(py::dtype::of<uint8_t>())) {
    if (b.size != 28 && b.size != m.input_size)
      throw std::invalid_argument("uint8 images must be 28x28 or " + std::to_string(m.input_size) + "x" +
                                  std::to_string(m.input_size));
    b.u8 = static_cast<const uint8_t*>(x.data());
  } else if (x.dtype().is(py::dtype::of<float>())) {
    if (b.size != m.input_size)
      throw std::invalid_argument("float32 images must be " + std::to_string(m.input_size) + "x" +
                                  std::to_string(m.input_size));
    b.f32 = static_cast<const float*>(x.data());
  } else {
    throw std::invalid_argument("expected uint8 or float32 pixels");
  }
  return b;
}

void raise_bad(int64_t bad) {
  if (bad >= 0)
    throw std::invalid_argument("input image " + std::to_string(bad) + " contains NaN or Inf");
}

py::dict cuda_info() {
  const lenet::cuda::CudaStatus s = lenet::cuda::cuda_status();
  py::dict d;
  d["compiled"] = s.compiled;
  d["runtime_version"] = s.runtime_version;
  d["driver_version"] = s.driver_version;
  d["archs"] = s.archs;
  d["error"] = s.error;
  py::list devs;
  for (const auto& dev : s.devices) {
    py::dict e;
    e["index"] = dev.index;
    e["name"] = dev.name;
    e["compute_capability"] = std::to_string(dev.major) + "." + std::to_string(dev.minor);
    e["multiprocessors"] = dev.multiprocessors;
    e["clock_khz"] = dev.clock_khz;
    e["memory_bytes"] = dev.memory_bytes;
    devs.append(e);
  }
  d["devices"] = devs;
  return d;
}

// A DLPack capsule's tensor (the capsule keeps ownership; the caller holds the producer alive).
const lenet::dlpack::DLTensor& dl_tensor(const py::capsule& cap) {
  if (std::strcmp(cap.name(), "dltensor") != 0)
    throw std::invalid_argument("expected an unconsumed DLPack 'dltensor' capsule");
  auto* managed = static_cast<lenet::dlpack::DLManagedTensor*>(cap.get_pointer());
  return managed->dl_tensor;
}

bool compact(const lenet::dlpack::DLTensor& t) {
  if (!t.strides) return true;
  int64_t expect = 1;
  for (int d = t.ndim - 1; d >= 0; --d) {
    if (t.shape[d] != 1 && t.strides[d] != expect) return false;
    expect *= t.shape[d];
  }
  return true;
}

#ifdef LENET_WITH_CUDA
using lenet::cuda::CudaEngine;

void check_device_tensor(const lenet::dlpack::DLTensor& t, int device, const char* what) {
  namespace dl = lenet::dlpack;
  if (t.device.device_type != dl::kDLCUDA && t.device.device_type != dl::kDLCUDAManaged)
    throw std::invalid_argument(std::string(what) + ": DLPack tensor is not in CUDA device memory");
  if (t.device.device_id != device)
    throw std::invalid_argument(std::string(what) + ": tensor is on cuda:" +
                                std::to_string(t.device.device_id) + " but the engine is on cuda:" +
                                std::to_string(device));
  if (!compact(t)) throw std::invalid_argument(std::string(what) + ": DLPack tensor is not contiguous");
  if (t.dtype.lanes != 1) throw std::invalid_argument(std::string(what) + ": vector dtypes are not supported");
  dl::check_aligned(t, what);
}

template <class T>
T* dl_data(const lenet::dlpack::DLTensor& t) {
  return reinterpret_cast<T*>(static_cast<char*>(t.data) + t.byte_offset);
}

// x: CUDA uint8 [N, S, S] or float32 [N, S, S], compact; out: CUDA float32 [N, classes];
// workspace: CUDA float32 [>= workspace_rows(N), 400] or None; first_bad: CUDA int32 [1] or None.
// Enqueues on `stream` and returns (no synchronization).
void scores_dlpack(CudaEngine& engine, const py::capsule& x_cap, const py::capsule& out_cap,
                   uintptr_t stream, const py::object& work_cap, const py::object& bad_cap) {
  namespace dl = lenet::dlpack;
  const dl::DLTensor& x = dl_tensor(x_cap);
  const dl::DLTensor& out = dl_tensor(out_cap);
  const Model& m = engine.model();
  check_device_tensor(x, engine.device(), "input");
  check_device_tensor(out, engine.device(), "output");
  if (x.ndim != 3 || x.shape[1] != x.shape[2]) throw std::invalid_argument("expected a [N, H, W] tensor");
  if (out.ndim != 2 || out.shape[0] != x.shape[0] || out.shape[1] != m.num_classes ||
      out.dtype.code != dl::kDLFloat || out.dtype.bits != 32)
    throw std::invalid_argument("output must be float32 [N, classes]");
  lenet::InputBatch b;
  b.n = x.shape[0];
  b.size = int(x.shape[1]);
  if (x.dtype.code == dl::kDLUInt && x.dtype.bits == 8) {
    if (b.size != 28 && b.size != m.input_size)
      throw std::invalid_argument("uint8 images must be 28x28 or " + std::to_string(m.input_size) + "x" +
                                  std::to_string(m.input_size));
    b.u8 = dl_data<const uint8_t>(x);
  } else if (x.dtype.code == dl::kDLFloat && x.dtype.bits == 32) {
    if (b.size != m.input_size)
      throw std::invalid_argument("float32 images must be " + std::to_string(m.input_size) + "x" +
                                  std::to_string(m.input_size));
    b.f32 = dl_data<const float>(x);
  } else {
    throw std::invalid_argument("expected uint8 or float32 pixels");
  }
  float* work = nullptr;
  if (!work_cap.is_none()) {
    const dl::DLTensor& w = dl_tensor(work_cap.cast<py::capsule>());
    check_device_tensor(w, engine.device(), "workspace");
    if (w.ndim != 2 || w.shape[0] < CudaEngine::workspace_rows(b.n) ||
        w.shape[1] != CudaEngine::kWorkspaceCols || w.dtype.code != dl::kDLFloat || w.dtype.bits != 32)
      throw std::invalid_argument("workspace must be float32 [min(N, 65536), 400]");
    work = dl_data<float>(w);
  }
  int* bad = nullptr;
  if (!bad_cap.is_none()) {
    const dl::DLTensor& f = dl_tensor(bad_cap.cast<py::capsule>());
    check_device_tensor(f, engine.device(), "first_bad");
    if (f.ndim != 1 || f.shape[0] != 1 || f.dtype.code != dl::kDLInt || f.dtype.bits != 32)
      throw std::invalid_argument("first_bad must be int32 [1]");
    bad = dl_data<int>(f);
  }
  py::gil_scoped_release release;
  engine.scores_device(b, dl_data<float>(out), stream, bad, work);
}
#endif

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
    const py::dict cuda = cuda_info();
    info["cuda_devices"] = py::len(cuda["devices"]);
    info["cuda_info"] = cuda;
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
  // The DLPack alignment rule the CUDA entry applies before launching (dlpack.h), on any capsule.
  m.def("check_dlpack_alignment", [](const py::capsule& cap) {
    lenet::dlpack::check_aligned(dl_tensor(cap), "input");
  });
  // The CUDA kernels' tanh (phases.h), elementwise on the host, for its accuracy test.
  m.def("cuda_tanh_approx", [](py::array_t<float, py::array::c_style | py::array::forcecast> x) {
    py::array_t<float> out(x.request().shape);
    const float* src = x.data();
    float* dst = out.mutable_data();
    for (py::ssize_t i = 0; i < x.size(); ++i) dst[i] = lenet::cuda::tanh_approx(src[i]);
    return out;
  });
  // Runs the CUDA kernels' programs on the CPU (tests prove the kernel logic with it).
  m.def("emulate_cuda_scores",
        [](const py::dict& spec, const py::dict& weights, py::array_t<uint8_t> connected,
           const py::array& x, bool reverse, int64_t chunk, int head_images) {
          const Model model = make_model(spec, weights, connected);
          const lenet::InputBatch b = host_batch(x, model);
          py::array_t<float> out({b.n, int64_t(model.num_classes)});
          if (b.n == 0) return out;
          int64_t bad;
          {
            py::gil_scoped_release release;
            bad = lenet::cuda::emulate_scores(model, b, out.mutable_data(),
                                              reverse ? lenet::cuda::ThreadOrder::Reverse
                                                      : lenet::cuda::ThreadOrder::Forward,
                                              chunk, head_images);
          }
          raise_bad(bad);
          return out;
        },
        py::arg("spec"), py::arg("weights"), py::arg("c3_connected"), py::arg("x"),
        py::arg("reverse") = false, py::arg("chunk") = 0, py::arg("head_images") = 32);
#ifdef LENET_WITH_CUDA
  py::class_<CudaEngine, std::shared_ptr<CudaEngine>>(m, "CudaEngine")
      .def(py::init([](const py::dict& spec, const py::dict& weights, py::array_t<uint8_t> connected) {
             return std::make_shared<CudaEngine>(make_model(spec, weights, connected));
           }),
           py::arg("spec"), py::arg("weights"), py::arg("c3_connected"))
      .def("scores",
           [](CudaEngine& e, const py::array& x) {
             const lenet::InputBatch b = host_batch(x, e.model());
             py::array_t<float> out({b.n, int64_t(e.model().num_classes)});
             if (b.n == 0) return out;
             int64_t bad;
             {
               py::gil_scoped_release release;
               bad = e.scores_host(b, out.mutable_data());
             }
             raise_bad(bad);
             return out;
           },
           py::arg("x"))
      .def("scores_dlpack", &scores_dlpack, py::arg("x"), py::arg("out"), py::arg("stream") = 0,
           py::arg("workspace") = py::none(), py::arg("first_bad") = py::none())
      .def_property_readonly_static("workspace_cols", [](py::object) { return CudaEngine::kWorkspaceCols; })
      .def_static("workspace_rows", &CudaEngine::workspace_rows, py::arg("n"))
      .def_property_readonly("device", &CudaEngine::device)
      .def_property_readonly("device_name", &CudaEngine::device_name)
      .def_property_readonly("threads", [](const CudaEngine&) { return 1; })
      .def_property_readonly("isa", [](const CudaEngine&) { return std::string("cuda"); })
      .def_property_readonly("num_classes", [](const CudaEngine& e) { return e.model().num_classes; })
      .def_property_readonly("input_size", [](const CudaEngine& e) { return e.model().input_size; });
#endif
}
