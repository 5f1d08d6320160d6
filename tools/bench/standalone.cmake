# Lets tools/bench/run.sh build bench_commit before tools/CMakeLists.txt has
# add_subdirectory(bench): passed as -DCMAKE_PROJECT_tostore_INCLUDE=<this>,
# it runs right after project(tostore) and defers including
# tools/bench/CMakeLists.txt to the end of the top-level CMakeLists.txt,
# where every target exists.  When tools/ already added it, it does nothing.
set(_bench_dir ${CMAKE_CURRENT_LIST_DIR})
function(_bench_add_if_missing)
  if(NOT TARGET bench_commit)
    include(${_bench_dir}/CMakeLists.txt)
  endif()
endfunction()
cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL _bench_add_if_missing)
