# Sources of the lenet_ext engine. Included from the top-level CMakeLists.txt.
set(LENET_CPU_ISAS "baseline")

pybind11_add_module(_core MODULE
  csrc/engine/bindings.cpp
  csrc/engine/cpu/isa.cpp
)
target_include_directories(_core PRIVATE csrc)
target_compile_definitions(_core PRIVATE LENET_VERSION="${PROJECT_VERSION}")
if(LENET_WITH_CUDA)
  target_compile_definitions(_core PRIVATE LENET_WITH_CUDA=1)
endif()
if(LENET_SANITIZE)
  target_compile_options(_core PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer)
  target_link_options(_core PRIVATE -fsanitize=address,undefined)
endif()
install(TARGETS _core LIBRARY DESTINATION lenet_ext)

if(LENET_WITH_CUDA AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/csrc/engine/cuda/cuda.cmake)
  include(csrc/engine/cuda/cuda.cmake)
endif()
