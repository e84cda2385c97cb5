# `cmake --install`: the library, the command line, the CUDA, MPI and Gloo plugins beside the library (where the
# loader looks for it), the public headers (include/gpuml) and a package config, so that
# find_package(gpuml) gives the imported target gpuml::gpuml (examples/ builds against it).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set_target_properties(gpuml PROPERTIES INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")
install(TARGETS gpuml_lib LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS gpuml RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(TARGET gpuml_cuda)
  # Keeps the CUDA toolkit's library directories it was linked with (outside the system paths).
  set_target_properties(gpuml_cuda PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)
  install(TARGETS gpuml_cuda LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()
if(TARGET gpuml_mpi)
  install(TARGETS gpuml_mpi LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()
if(TARGET gpuml_gloo)
  install(TARGETS gpuml_gloo LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()
install(DIRECTORY ${CMAKE_SOURCE_DIR}/include/gpuml DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/gpumlConfig.cmake.in ${CMAKE_BINARY_DIR}/gpumlConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/gpuml)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/gpumlConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/gpumlConfig.cmake ${CMAKE_BINARY_DIR}/gpumlConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/gpuml)
