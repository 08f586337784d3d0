# The CUDA backend's kernels and engine (included from sources.cmake when LENET_WITH_CUDA).
# The host emulator (cuda/emulator.cpp) is part of every build and listed in sources.cmake.
target_sources(_core PRIVATE
  csrc/engine/cuda/cuda_engine.cu
  csrc/engine/cuda/fused_subsample.cu
  csrc/engine/cuda/fused_rbf.cu
)
# Static runtime: the wheel then needs only the NVIDIA driver, not a CUDA toolkit.
set_target_properties(_core PROPERTIES
  CUDA_RUNTIME_LIBRARY Static
  CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}"
  CUDA_STANDARD 17
  CUDA_STANDARD_REQUIRED ON)
target_link_libraries(_core PRIVATE CUDA::cudart_static)
# -lineinfo: profilers map SASS to phases.h; no fast-math (the emulator must match bit-for-bit
# in structure, and tanhf's accuracy is part of the 1e-5 contract).
target_compile_options(_core PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-lineinfo>)
string(REPLACE ";" " " _lenet_cuda_archs "${CMAKE_CUDA_ARCHITECTURES}")
target_compile_definitions(_core PRIVATE LENET_CUDA_ARCHS="${_lenet_cuda_archs}")
