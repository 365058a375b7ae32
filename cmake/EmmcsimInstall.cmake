# install() rules and the exported CMake package: a virtual platform does
#   find_package(emmcsim REQUIRED)  →  target_link_libraries(vp PRIVATE emmcsim::models)
# and a C++ client of the daemon links emmcsim::bridge_protocol (or emmcsim::transport).
#
# Two export sets, so that a platform needs found only what its targets link:
#   emmcsimTargets           support, rpmb, mmc, models, bridge_protocol: OpenSSL, SystemC and
#                            threads.
#                            Boost, nlohmann-json and fmt are used header-only and at build time
#                            only (BUILD_INTERFACE in the targets' link lists), so they do not
#                            appear in it.
#   emmcsimTransportTargets  transport: also Boost (Asio) and spdlog; loaded by the package when
#                            those are found, or required with COMPONENTS transport.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(EMMCSIM_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/emmcsim)

install(TARGETS emmcsim_support emmcsim_rpmb emmcsim_mmc emmcsim_models emmcsim_bridge_protocol EXPORT emmcsimTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS emmcsim_transport EXPORT emmcsimTransportTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# transport's public headers only: its internal ones live in transport/src, and the test double
# emmcsim::vhost_user_frontend (transport/frontend) is neither installed nor exported.
install(DIRECTORY support/include/ rpmb/include/ mmc/include/ models/include/ transport/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS emmcsim RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(TARGET emmcsim_mmcioctl)  # the LD_PRELOAD shim
  install(TARGETS emmcsim_mmcioctl LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()
install(EXPORT emmcsimTargets NAMESPACE emmcsim:: DESTINATION ${EMMCSIM_CMAKE_DIR})
install(EXPORT emmcsimTransportTargets NAMESPACE emmcsim:: DESTINATION ${EMMCSIM_CMAKE_DIR})

configure_package_config_file(cmake/emmcsimConfig.cmake.in
  ${PROJECT_BINARY_DIR}/emmcsimConfig.cmake INSTALL_DESTINATION ${EMMCSIM_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/emmcsimConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/emmcsimConfig.cmake ${PROJECT_BINARY_DIR}/emmcsimConfigVersion.cmake
  DESTINATION ${EMMCSIM_CMAKE_DIR})
