// The CUDA side: device status (every build), the host emulator of the CUDA kernels (every build:
// tests prove the kernel logic with it) and, in nvcc builds, the CUDA engine with its host (numpy)
// and device (DLPack) entries.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "engine/bindings/bindings.h"
#include "engine/cuda/device.h"
#include "engine/cuda/dlpack.h"
#include "engine/cuda/emulator.h"
#ifdef LENET_WITH_CUDA
#include "engine/cuda/cuda_engine.h"
#endif

namespace lenet::bindings {

py::dict cuda_info() {
  const cuda::CudaStatus s = cuda::cuda_status();
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

namespace {

namespace dl = dlpack;

// A DLPack capsule's tensor (the capsule keeps ownership; the caller holds the producer alive).
const dl::DLTensor& dl_tensor(const py::capsule& cap) {
  if (std::strcmp(cap.name(), "dltensor") != 0)
    throw std::invalid_argument("expected an unconsumed DLPack 'dltensor' capsule");
  auto* managed = static_cast<dl::DLManagedTensor*>(cap.get_pointer());
  return managed->dl_tensor;
}

#ifdef LENET_WITH_CUDA
using cuda::CudaEngine;

bool compact(const dl::DLTensor& t) {
  if (!t.strides) return true;
  int64_t expect = 1;
  for (int d = t.ndim - 1; d >= 0; --d) {
    if (t.shape[d] != 1 && t.strides[d] != expect) return false;
    expect *= t.shape[d];
  }
  return true;
}

std::string dtype_name(const dl::DLDataType& t) {
  const std::string bits = std::to_string(t.bits) + (t.lanes != 1 ? "x" + std::to_string(t.lanes) : "");
  switch (t.code) {
    case dl::kDLInt: return "int" + bits;
    case dl::kDLUInt: return "uint" + bits;
    case dl::kDLFloat: return "float" + bits;
    default: return "DLPack type code " + std::to_string(t.code) + " (" + bits + " bits)";
  }
}

// Where a device tensor lives and whether the kernels can read it; its dtype and shape are the
// input rules' (check_input) or the caller's.
void check_device_tensor(const dl::DLTensor& t, int device, const char* what) {
  if (t.device.device_type != dl::kDLCUDA && t.device.device_type != dl::kDLCUDAManaged)
    throw std::invalid_argument(std::string(what) + ": DLPack tensor is not in CUDA device memory");
  if (t.device.device_id != device)
    throw std::invalid_argument(std::string(what) + ": tensor is on cuda:" +
                                std::to_string(t.device.device_id) + " but the engine is on cuda:" +
                                std::to_string(device));
  dl::check_aligned(t, what);
}

template <class T>
T* dl_data(const dl::DLTensor& t) {
  return reinterpret_cast<T*>(static_cast<char*>(t.data) + t.byte_offset);
}

bool is_f32(const dl::DLTensor& t) {
  return t.dtype.code == dl::kDLFloat && t.dtype.bits == 32 && t.dtype.lanes == 1;
}

// x: CUDA uint8 [N, H, W] / [N, 1, H, W] or float32 [N, 1, S, S] (the input rules); out: CUDA
// float32 [N, classes]; workspace: CUDA float32 [>= workspace_rows(N), 400] or None; first_bad:
// CUDA int32 [1] or None. Enqueues on `stream` and returns (no synchronization).
void scores_dlpack(CudaEngine& engine, const py::capsule& x_cap, const py::capsule& out_cap,
                   uintptr_t stream, const py::object& work_cap, const py::object& bad_cap) {
  const dl::DLTensor& x = dl_tensor(x_cap);
  const dl::DLTensor& out = dl_tensor(out_cap);
  const Model& m = engine.model();
  check_device_tensor(x, engine.device(), "input");
  check_device_tensor(out, engine.device(), "output");
  ArrayDesc d;
  const bool one_lane = x.dtype.lanes == 1;
  if (one_lane && x.dtype.code == dl::kDLUInt && x.dtype.bits == 8) d.type = PixelType::U8;
  else if (is_f32(x)) d.type = PixelType::F32;
  d.dtype = dtype_name(x.dtype);
  d.ndim = x.ndim;
  d.shape = x.shape;
  d.contiguous = compact(x);
  d.data = dl_data<const char>(x);
  const InputBatch b = check_input(m, d);
  if (out.ndim != 2 || out.shape[0] != b.n || out.shape[1] != m.num_classes || !compact(out) || !is_f32(out))
    throw std::invalid_argument("output must be a contiguous float32 [N, classes] tensor");
  float* work = nullptr;
  if (!work_cap.is_none()) {
    const dl::DLTensor& w = dl_tensor(work_cap.cast<py::capsule>());
    check_device_tensor(w, engine.device(), "workspace");
    if (w.ndim != 2 || w.shape[0] < CudaEngine::workspace_rows(b.n) ||
        w.shape[1] != CudaEngine::kWorkspaceCols || !compact(w) || !is_f32(w))
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
  if (b.n == 0) return;
  py::gil_scoped_release release;
  engine.scores_device(b, dl_data<float>(out), stream, bad, work);
}
#endif

}  // namespace

void register_cuda(py::module_& m) {
  // The per-phase read/write conflict checker over the kernels' programs (emulator.h).
  m.def("check_cuda_phases",
        [](const py::dict& spec, const py::dict& weights, py::array_t<uint8_t> connected,
           const py::array& x, int head_images, const std::string& merge_kernel, int merge_after) {
          const Model model = model_from_python(spec, weights, connected);
          const InputBatch b = host_batch(model, x);
          cuda::PhaseCheck r;
          {
            py::gil_scoped_release release;
            r = cuda::check_phases(model, b, head_images, merge_kernel, merge_after);
          }
          py::dict d;
          d["phases"] = r.phases;
          d["conflicts"] = r.conflicts;
          d["examples"] = r.examples;
          return d;
        },
        py::arg("spec"), py::arg("weights"), py::arg("c3_connected"), py::arg("x"),
        py::arg("head_images") = 32, py::arg("merge_kernel") = "", py::arg("merge_after") = -1);
  // The DLPack alignment rule the CUDA entry applies before launching (dlpack.h), on any capsule.
  m.def("check_dlpack_alignment", [](const py::capsule& cap) {
    dl::check_aligned(dl_tensor(cap), "input");
  });
  // The CUDA kernels' tanh (phases.h), elementwise on the host, for its accuracy test.
  m.def("cuda_tanh_approx", [](py::array_t<float, py::array::c_style | py::array::forcecast> x) {
    py::array_t<float> out(x.request().shape);
    const float* src = x.data();
    float* dst = out.mutable_data();
    for (py::ssize_t i = 0; i < x.size(); ++i) dst[i] = cuda::tanh_approx(src[i]);
    return out;
  });
  // Runs the CUDA kernels' programs on the CPU (tests prove the kernel logic with it).
  m.def("emulate_cuda_scores",
        [](const py::dict& spec, const py::dict& weights, py::array_t<uint8_t> connected,
           const py::array& x, bool reverse, int64_t chunk, int head_images) {
          const Model model = model_from_python(spec, weights, connected);
          const cuda::ThreadOrder order = reverse ? cuda::ThreadOrder::Reverse : cuda::ThreadOrder::Forward;
          return host_scores(model, x, [&](const InputBatch& b, float* out) {
            return cuda::emulate_scores(model, b, out, order, chunk, head_images);
          });
        },
        py::arg("spec"), py::arg("weights"), py::arg("c3_connected"), py::arg("x"),
        py::arg("reverse") = false, py::arg("chunk") = 0, py::arg("head_images") = 32);
#ifdef LENET_WITH_CUDA
  py::class_<CudaEngine, std::shared_ptr<CudaEngine>>(m, "CudaEngine")
      .def(py::init([](const py::dict& spec, const py::dict& weights, py::array_t<uint8_t> connected) {
             return std::make_shared<CudaEngine>(model_from_python(spec, weights, connected));
           }),
           py::arg("spec"), py::arg("weights"), py::arg("c3_connected"))
      .def("scores",
           [](CudaEngine& e, const py::array& x) {
             return host_scores(e.model(), x, [&](const InputBatch& b, float* out) {
               return e.scores_host(b, out);
             });
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

}  // namespace lenet::bindings
