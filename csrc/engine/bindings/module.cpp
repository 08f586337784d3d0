// The _core module: its version, build_info, the translation of the engine's exceptions, and the
// classes each area registers (spec.cpp, cpu.cpp, cuda.cpp; see bindings.h).
#include <pybind11/pybind11.h>

#include <stdexcept>

#include "engine/bindings/bindings.h"
#include "engine/cpu/int8/kernels.h"
#include "engine/cpu/isa.h"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "lenet_ext native core";
  m.attr("__version__") = LENET_VERSION;
  // Bad input and bad models are the caller's mistake: ValueError, with the engine's message.
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
    const py::dict cuda = lenet::bindings::cuda_info();
    info["cuda_devices"] = py::len(cuda["devices"]);
    info["cuda_info"] = cuda;
    info["cpu_isa"] = lenet::isa_name(lenet::detect_isa());
    try {
      info["int8_isa"] = lenet::cpu::int8::int8_isa_name(lenet::cpu::int8::detect_int8_isa());
    } catch (const std::invalid_argument&) {
      info["int8_isa"] = py::none();
    }
    return info;
  });
  lenet::bindings::register_cpu(m);
  lenet::bindings::register_int8(m);
  lenet::bindings::register_cuda(m);
}
