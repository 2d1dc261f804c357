# llhttp is compiled from the C sources that Debian's node-llhttp package installs; nothing of it
# is copied into this repository. The HTTP codec (gateway/http) links the `llhttp` target.
set(LLHTTP_DIR /usr/share/llhttp CACHE PATH "llhttp C sources (Debian package node-llhttp)")
set(LLHTTP_INCLUDE_DIR /usr/share/include/llhttp CACHE PATH "llhttp header directory")
if(NOT EXISTS ${LLHTTP_DIR}/llhttp.c OR NOT EXISTS ${LLHTTP_INCLUDE_DIR}/llhttp.h)
  message(FATAL_ERROR "llhttp sources not found under ${LLHTTP_DIR}: run scripts/setup.sh "
                      "(it installs node-llhttp)")
endif()
add_library(llhttp STATIC ${LLHTTP_DIR}/llhttp.c ${LLHTTP_DIR}/api.c ${LLHTTP_DIR}/http.c)
target_include_directories(llhttp SYSTEM PUBLIC ${LLHTTP_INCLUDE_DIR})
target_compile_options(llhttp PRIVATE -w)
set_target_properties(llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON)
