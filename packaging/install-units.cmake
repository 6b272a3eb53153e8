# Run by `cmake --install` and CPack (install(SCRIPT) in CMakeLists.txt):
# the systemd units name nubod's path, known only now (the prefix of
# `make install PREFIX=…`, or CPack's /usr). Units go to
# PREFIX/lib/systemd/system: /usr/lib/systemd/system for the package,
# /usr/local/lib/systemd/system (where systemd looks too) for a local
# install. NUBO_SRC, NUBO_CONFDIR and NUBO_SBINDIR_REL are set before.
set(NUBO_SBINDIR "${CMAKE_INSTALL_PREFIX}/${NUBO_SBINDIR_REL}")
set(unitdir "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
file(MAKE_DIRECTORY "${unitdir}")
foreach(unit nubo-portal.service nubo-node.service)
  message(STATUS "Installing: ${unitdir}/${unit}")
  configure_file("${NUBO_SRC}/packaging/${unit}.in" "${unitdir}/${unit}" @ONLY)
  file(CHMOD "${unitdir}/${unit}" PERMISSIONS OWNER_READ OWNER_WRITE
    GROUP_READ WORLD_READ)
endforeach()
