# What `cmake --install` puts in place (README "Install"), and the .deb CPack builds from it:
# the programs, the guest agent and init, a commented /etc/airlock/airlock.yaml, the deny-all
# default policy (every shipped policy as an example under share/), and the systemd units.
include(GNUInstallDirs)

install(TARGETS airlock-gateway airlockctl vmlaunch RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(TARGET airlock-agent)
  install(TARGETS airlock-agent RUNTIME DESTINATION lib/airlock/guest)
  install(PROGRAMS vmlaunch/guest/init.sh DESTINATION lib/airlock/guest)
endif()

# Configuration lives in /etc whatever the prefix (the units and the defaults name it there).
install(FILES packaging/airlock.yaml DESTINATION /etc/airlock)
install(FILES policies/default.yaml DESTINATION /etc/airlock/policies)
install(DIRECTORY policies/ DESTINATION ${CMAKE_INSTALL_DATADIR}/airlock/policies
        FILES_MATCHING PATTERN "*.yaml" PATTERN "schema" EXCLUDE)
install(FILES packaging/systemd/airlock-gateway.service packaging/systemd/vmlaunch-gc.service
              packaging/systemd/vmlaunch-gc.timer
        DESTINATION lib/systemd/system)
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME airlock)
set(CPACK_PACKAGE_VENDOR "Airlock")
set(CPACK_PACKAGE_CONTACT "Airlock maintainers <airlock@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Egress gateway and credential broker for AI-agent sandboxes")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "nftables, iproute2")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "qemu-system-x86, busybox-static, lz4, cpio")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/packaging/conffiles)
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
include(CPack)
