# Sources of the lenet_ext engine. Included from the top-level CMakeLists.txt.
#
# The CPU kernels are one templated source (cpu/kernels_impl.h and the fused_* headers) compiled
# once per instruction set with per-file flags, and chosen at run time (cpu/isa.cpp). Never
# -march=native: a wheel built here must run on any x86-64.
set(LENET_CPU_ISAS "baseline")
set(_lenet_cpu_sources
  csrc/engine/model.cpp
  csrc/engine/input.cpp
  csrc/engine/cpu/isa.cpp
  csrc/engine/cpu/thread_pool.cpp
  csrc/engine/cpu/cpu_engine.cpp
  csrc/engine/cpu/kernels_baseline.cpp
  csrc/engine/cpu/int8/quant_model.cpp
  csrc/engine/cpu/int8/packed.cpp
  csrc/engine/cpu/int8/isa.cpp
  csrc/engine/cpu/int8/int8_engine.cpp
  csrc/engine/cuda/packing.cpp csrc/engine/cuda/emulator.cpp csrc/engine/cuda/device_none.cpp  # CUDA logic on the host, every build
)
set(_lenet_cpu_defs "")
# Contracting a*b+c into FMAs is what the kernels are written for; no other fast-math.
set_source_files_properties(csrc/engine/cpu/kernels_baseline.cpp PROPERTIES COMPILE_OPTIONS "-ffp-contract=fast")
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  list(APPEND _lenet_cpu_sources csrc/engine/cpu/kernels_avx2.cpp csrc/engine/cpu/kernels_avx512.cpp)
  set_source_files_properties(csrc/engine/cpu/kernels_avx2.cpp PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-ffp-contract=fast")
  set_source_files_properties(csrc/engine/cpu/kernels_avx512.cpp PROPERTIES COMPILE_OPTIONS "-mavx512f;-mfma;-ffp-contract=fast")
  # INT8: VNNI + VBMI, and plain AVX-512 BW. No contraction: the RBF head's float sums must be the
  # NumPy reference's multiply-then-add, bit for bit.
  list(APPEND _lenet_cpu_sources csrc/engine/cpu/int8/kernels_vnni.cpp csrc/engine/cpu/int8/kernels_avx512bw.cpp)
  set_source_files_properties(csrc/engine/cpu/int8/kernels_vnni.cpp PROPERTIES COMPILE_OPTIONS
    "-mavx512f;-mavx512bw;-mavx512vl;-mavx512vnni;-mavx512vbmi;-ffp-contract=off")
  set_source_files_properties(csrc/engine/cpu/int8/kernels_avx512bw.cpp PROPERTIES COMPILE_OPTIONS
    "-mavx512f;-mavx512bw;-ffp-contract=off")
  list(APPEND _lenet_cpu_defs LENET_HAVE_AVX2=1 LENET_HAVE_AVX512=1)
  set(LENET_CPU_ISAS "avx512;avx2;baseline")
endif()

# The bindings, one file per area (csrc/engine/bindings/bindings.h says which).
pybind11_add_module(_core MODULE
  csrc/engine/bindings/module.cpp
  csrc/engine/bindings/spec.cpp
  csrc/engine/bindings/cpu.cpp
  csrc/engine/bindings/int8.cpp
  csrc/engine/bindings/cuda.cpp
  ${_lenet_cpu_sources}
)
target_include_directories(_core PRIVATE csrc)
target_compile_definitions(_core PRIVATE LENET_VERSION="${PROJECT_VERSION}" ${_lenet_cpu_defs})
find_package(Threads REQUIRED)
target_link_libraries(_core PRIVATE Threads::Threads)
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
