# The Gloo communicator plugin (libgpuml_gloo.so, src/backend/gloo): CPU collectives for processes
# started with the torchrun variables. Built where Gloo's CMake package is (Debian: libgloo-dev,
# which tools/setup.sh installs). A MODULE, dlopen'ed only by such a job, so that the core library
# and the gpuml executable never link Gloo. GPUML_GLOO=AUTO (default) builds it when Gloo is
# found, ON requires it, OFF skips it (gpuml then refuses the torchrun variables, saying why).
set(GPUML_GLOO AUTO CACHE STRING "Build the Gloo communicator plugin: AUTO, ON or OFF")
set_property(CACHE GPUML_GLOO PROPERTY STRINGS AUTO ON OFF)

set(GPUML_GLOO_ENABLED OFF)
if(NOT GPUML_GLOO STREQUAL "OFF")
  if(GPUML_GLOO STREQUAL "ON")
    find_package(Gloo CONFIG REQUIRED)
  else()
    find_package(Gloo CONFIG QUIET)
  endif()
  if(TARGET gloo)
    set(GPUML_GLOO_ENABLED ON)
  else()
    message(STATUS "Gloo plugin: not built (no Gloo found; Debian: libgloo-dev)")
  endif()
endif()

if(GPUML_GLOO_ENABLED)
  find_package(Threads REQUIRED)
  message(STATUS "Gloo plugin: built (Gloo ${Gloo_VERSION})")
  file(GLOB GPUML_GLOO_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/backend/gloo/*.cpp)
  add_library(gpuml_gloo MODULE ${GPUML_GLOO_SOURCES})
  set_target_properties(gpuml_gloo PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
  target_compile_options(gpuml_gloo PRIVATE ${GPUML_WARNINGS})
  target_link_libraries(gpuml_gloo PRIVATE gpuml_lib gloo Threads::Threads)
endif()
