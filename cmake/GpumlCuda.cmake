# The CUDA backend plugin (libgpuml_cuda.so): found and configured here, built from
# src/backend/cuda/. GPUML_CUDA=AUTO builds it when a CUDA compiler, cuBLASLt and cuDNN are found,
# ON requires them, OFF skips it. The core library and the executables never link CUDA: the
# plugin is loaded at run time (src/backend/plugin_loader.h).
#
# Sets GPUML_CUDA_ENABLED (ON/OFF) and, when ON, defines the target gpuml_cuda.
#
# NCCL (the data-parallel communicator on GPU memory, src/backend/cuda/nccl_communicator.cpp) is
# compiled into the plugin when nccl.h is found (GPUML_NCCL=AUTO; ON requires it, OFF leaves it
# out). Only its header is needed at build time: the plugin dlopen()s libnccl.so.2 when a run asks
# for NCCL, so that the plugin still loads on a machine without NCCL.

set(GPUML_CUDA AUTO CACHE STRING "Build the CUDA backend plugin: AUTO (when the toolkit is found), ON or OFF")
set_property(CACHE GPUML_CUDA PROPERTY STRINGS AUTO ON OFF)
# sm_80 and sm_90 machine code, plus compute_90 PTX that newer GPUs JIT-compile.
set(GPUML_CUDA_ARCHITECTURES "80-real;90" CACHE STRING "CUDA architectures of the plugin (CMAKE_CUDA_ARCHITECTURES syntax; 'native' for the local GPU)")
set(GPUML_CUDA_ENABLED OFF)
set(GPUML_NCCL AUTO CACHE STRING "Compile NCCL into the CUDA plugin: AUTO (when nccl.h is found), ON or OFF")
set_property(CACHE GPUML_NCCL PROPERTY STRINGS AUTO ON OFF)
set(GPUML_NCCL_ENABLED OFF)

function(gpuml_cuda_unavailable reason)
  if(GPUML_CUDA STREQUAL "ON")
    message(FATAL_ERROR "GPUML_CUDA=ON but ${reason}")
  endif()
  message(STATUS "CUDA plugin: not built (${reason})")
endfunction()

if(NOT GPUML_CUDA STREQUAL "OFF")
  # nvcc is often installed outside PATH (/usr/local/cuda/bin): look there too.
  if(NOT DEFINED CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
    find_program(GPUML_NVCC nvcc HINTS ENV CUDA_HOME ENV CUDA_PATH /usr/local/cuda PATH_SUFFIXES bin)
    if(GPUML_NVCC)
      set(CMAKE_CUDA_COMPILER "${GPUML_NVCC}" CACHE FILEPATH "CUDA compiler")
    endif()
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    gpuml_cuda_unavailable("no CUDA compiler (nvcc) found")
  else()
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES "${GPUML_CUDA_ARCHITECTURES}")
    endif()
    set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
    enable_language(CUDA)
    # CMake 3.25 predates nvcc 13 and does not know its C++20 flag (the .cu files need C++20).
    if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION OR CMAKE_CUDA20_STANDARD_COMPILE_OPTION STREQUAL "")
      set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
    endif()
    # Debian 12's CMake 3.25.1 sets a property on CUDA::nvToolsExt without checking that the target
    # exists, and CUDA 12+ ships no libnvToolsExt (NVTX 3 is header-only), so find_package fails on
    # a stock machine. An empty placeholder target (nothing links it) lets the module finish.
    if(CMAKE_VERSION VERSION_LESS 3.26 AND NOT TARGET CUDA::nvToolsExt)
      add_library(CUDA::nvToolsExt INTERFACE IMPORTED)
    endif()
    find_package(CUDAToolkit)
    find_path(GPUML_CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/include)
    find_library(GPUML_CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/lib/x86_64-linux-gnu)
    if(NOT CUDAToolkit_FOUND OR NOT TARGET CUDA::cublasLt)
      gpuml_cuda_unavailable("the CUDA toolkit (cudart, cuBLASLt) was not found")
    elseif(NOT GPUML_CUDNN_INCLUDE_DIR OR NOT GPUML_CUDNN_LIBRARY)
      gpuml_cuda_unavailable("cuDNN (cudnn.h, libcudnn) was not found")
    else()
      set(GPUML_CUDA_ENABLED ON)
    endif()
  endif()
endif()

if(GPUML_CUDA_ENABLED)
  message(STATUS "CUDA plugin: built for ${CMAKE_CUDA_ARCHITECTURES} (CUDA ${CUDAToolkit_VERSION}, cuDNN ${GPUML_CUDNN_LIBRARY})")
  file(GLOB GPUML_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/backend/cuda/*.cpp
       ${CMAKE_SOURCE_DIR}/src/backend/cuda/*.cu)
  # A MODULE: dlopen'ed, never linked against. It links the shared core (gpuml_lib) for the
  # Backend base class, errors and shapes, so its symbols resolve at link time, not at dlopen.
  add_library(gpuml_cuda MODULE ${GPUML_CUDA_SOURCES})
  set_target_properties(gpuml_cuda PROPERTIES CUDA_STANDARD 20 CUDA_STANDARD_REQUIRED ON CUDA_EXTENSIONS OFF)
  set_target_properties(gpuml_cuda PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}
                                              CUDA_SEPARABLE_COMPILATION OFF)
  target_include_directories(gpuml_cuda PRIVATE ${GPUML_CUDNN_INCLUDE_DIR})
  set(GPUML_CUDA_WARNINGS -Xcompiler=-Wall,-Wextra,-Wno-unused-parameter)
  if(GPUML_WERROR)
    list(APPEND GPUML_CUDA_WARNINGS -Werror=all-warnings -Xcompiler=-Werror)
  endif()
  target_compile_options(gpuml_cuda PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${GPUML_WARNINGS}>
                                            $<$<COMPILE_LANGUAGE:CUDA>:${GPUML_CUDA_WARNINGS}>
                                            $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr>)
  target_link_libraries(gpuml_cuda PRIVATE gpuml_lib CUDA::cudart CUDA::cublasLt ${GPUML_CUDNN_LIBRARY} ${CMAKE_DL_LIBS})

  if(NOT GPUML_NCCL STREQUAL "OFF")
    find_path(GPUML_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/include /usr/local/include)
    if(GPUML_NCCL_INCLUDE_DIR)
      file(STRINGS "${GPUML_NCCL_INCLUDE_DIR}/nccl.h" GPUML_NCCL_VERSION_LINE REGEX "^#define NCCL_VERSION_CODE ")
      string(REGEX REPLACE "^#define NCCL_VERSION_CODE +([0-9]+).*" "\\1" GPUML_NCCL_VERSION_CODE "${GPUML_NCCL_VERSION_LINE}")
    endif()
    if(GPUML_NCCL_INCLUDE_DIR AND GPUML_NCCL_VERSION_CODE GREATER_EQUAL 21400)
      set(GPUML_NCCL_ENABLED ON)
    elseif(GPUML_NCCL STREQUAL "ON")
      message(FATAL_ERROR "GPUML_NCCL=ON but nccl.h of NCCL 2.14 or newer was not found (found: '${GPUML_NCCL_INCLUDE_DIR}', "
                          "version code '${GPUML_NCCL_VERSION_CODE}'); it comes with the CUDA toolkit's NCCL package (libnccl-dev)")
    endif()
  endif()
  if(GPUML_NCCL_ENABLED)
    message(STATUS "NCCL: compiled into the CUDA plugin (nccl.h ${GPUML_NCCL_VERSION_CODE} in ${GPUML_NCCL_INCLUDE_DIR}; "
                   "libnccl.so.2 is opened at run time)")
    target_include_directories(gpuml_cuda SYSTEM PRIVATE ${GPUML_NCCL_INCLUDE_DIR})
    target_compile_definitions(gpuml_cuda PRIVATE GPUML_NCCL_ENABLED=1)
  else()
    if(GPUML_NCCL STREQUAL "OFF")
      set(GPUML_NCCL_WHY "GPUML_NCCL=OFF")
    else()
      set(GPUML_NCCL_WHY "nccl.h of NCCL >= 2.14 not found")
    endif()
    message(STATUS "NCCL: not compiled in (${GPUML_NCCL_WHY}): a job of several GPU ranks then needs GPUML_COMM=host "
                   "(gradients through host memory over MPI or Gloo); the plugin says so when NCCL is asked for")
  endif()
endif()
