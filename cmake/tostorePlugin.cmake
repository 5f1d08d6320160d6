# tostore_add_plugin(<name> SOURCES <files...> [LIBS <libs...>])
# Builds <name>.so as a tostore plugin: C11, hidden visibility so that only
# the entry symbol is exported, no "lib" prefix.  Plugins never link
# libtostore: they reach the kernel only through the host table.
function(tostore_add_plugin name)
  cmake_parse_arguments(P "" "" "SOURCES;LIBS" ${ARGN})
  add_library(${name} MODULE ${P_SOURCES})
  set_target_properties(${name} PROPERTIES PREFIX "" C_VISIBILITY_PRESET hidden
                        C_STANDARD 11)
  if(TARGET tostore::headers)
    target_link_libraries(${name} PRIVATE tostore::headers)
  endif()
  if(P_LIBS)
    target_link_libraries(${name} PRIVATE ${P_LIBS})
  endif()
endfunction()
