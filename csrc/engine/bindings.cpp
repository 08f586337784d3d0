// The only file that knows pybind11.
#include <pybind11/pybind11.h>

#include "engine/cpu/isa.h"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "lenet_ext native core";
  m.attr("__version__") = LENET_VERSION;
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
}
