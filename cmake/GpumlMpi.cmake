# The MPI communicator plugin (libgpuml_mpi.so, src/backend/mpi): built where Open MPI's headers
# are (Debian: libopenmpi-dev, which tools/setup.sh installs). A MODULE, dlopen'ed only by a job
# that a launcher started as several processes, so that the core library, the gpuml executable
# and the GPU bundle never link MPI. GPUML_MPI=AUTO (default) builds it when MPI is found, ON
# requires it, OFF skips it (gpuml then refuses several processes, saying why).
set(GPUML_MPI AUTO CACHE STRING "Build the MPI communicator plugin: AUTO, ON or OFF")
set_property(CACHE GPUML_MPI PROPERTY STRINGS AUTO ON OFF)

set(GPUML_MPI_ENABLED OFF)
# The project compiles C++ only: MPI's C API through the C++ compiler, without the deprecated C++
# bindings (libmpi_cxx).
set(MPI_CXX_SKIP_MPICXX ON)
if(NOT GPUML_MPI STREQUAL "OFF")
  if(GPUML_MPI STREQUAL "ON")
    find_package(MPI REQUIRED COMPONENTS CXX)
  else()
    find_package(MPI QUIET COMPONENTS CXX)
  endif()
  if(MPI_CXX_FOUND)
    set(GPUML_MPI_ENABLED ON)
  else()
    message(STATUS "MPI plugin: not built (no MPI found; Debian: libopenmpi-dev)")
  endif()
endif()

if(GPUML_MPI_ENABLED)
  message(STATUS "MPI plugin: built (MPI ${MPI_CXX_VERSION}, ${MPI_CXX_INCLUDE_DIRS})")
  file(GLOB GPUML_MPI_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/backend/mpi/*.cpp)
  add_library(gpuml_mpi MODULE ${GPUML_MPI_SOURCES})
  set_target_properties(gpuml_mpi PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
  target_compile_options(gpuml_mpi PRIVATE ${GPUML_WARNINGS})
  target_link_libraries(gpuml_mpi PRIVATE gpuml_lib MPI::MPI_CXX ${CMAKE_DL_LIBS})
endif()
