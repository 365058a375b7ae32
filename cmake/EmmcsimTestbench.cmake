# One-line helpers for the testbench: a GoogleTest suite, a Google Benchmark program, a fuzz
# target. Each links emmcsim_warnings, sees testbench/common, and is named the way the rest of the
# tree names its kind. Included by testbench/CMakeLists.txt.

# emmcsim_add_suite(TARGET SOURCES file... LIBS lib... LABEL label [PREFIX prefix]
#                   [DEFINITIONS def...] [PROPERTIES prop value...])
# A GoogleTest executable, its tests discovered into CTest (TEST_PREFIX PREFIX) with LABEL and any
# further test PROPERTIES; gtest_main is linked. One label: CMake 3.25's gtest_discover_tests
# splits a list-valued property into words, so a second label would never arrive.
function(emmcsim_add_suite target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "PREFIX;LABEL" "SOURCES;LIBS;DEFINITIONS;PROPERTIES")
  add_executable(${target} ${arg_SOURCES})
  target_link_libraries(${target} PRIVATE ${arg_LIBS} GTest::gtest_main emmcsim_warnings)
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/testbench/common)
  if(arg_DEFINITIONS)
    target_compile_definitions(${target} PRIVATE ${arg_DEFINITIONS})
  endif()
  gtest_discover_tests(${target} TEST_PREFIX "${arg_PREFIX}" DISCOVERY_TIMEOUT 60
    PROPERTIES LABELS "${arg_LABEL}" ${arg_PROPERTIES})
endfunction()

# emmcsim_add_benchmark(TARGET SOURCES file... LIBS lib...)
# A Google Benchmark program (build/bin/TARGET); benchmark::benchmark and fmt are linked.
function(emmcsim_add_benchmark target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "SOURCES;LIBS")
  add_executable(${target} ${arg_SOURCES})
  target_link_libraries(${target} PRIVATE ${arg_LIBS} benchmark::benchmark fmt::fmt emmcsim_warnings)
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/testbench/common)
endfunction()

# emmcsim_add_fuzzer(NAME LIBS lib...)
# testbench/fuzz/NAME_fuzz.cpp, its seeds in testbench/fuzz/corpus/NAME.
#  - With EMMCSIM_FUZZ (clang, the fuzz preset): the libFuzzer target NAME_fuzz.
#  - In the test builds: NAME_fuzz_seeds, the same LLVMFuzzerTestOneInput under replay_main.cpp,
#    and the CTest test fuzz_seeds.NAME that feeds it every seed and every finding filed for it in
#    ../shared/fuzz-findings (NAME_fuzz-*), so each regression input runs under the default, ASan
#    and UBSan builds, not only when someone fuzzes.
function(emmcsim_add_fuzzer name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "LIBS")
  set(dir ${PROJECT_SOURCE_DIR}/testbench/fuzz)
  if(EMMCSIM_FUZZ)
    set(target ${name}_fuzz)
    add_executable(${target} ${dir}/${name}_fuzz.cpp)
    target_compile_options(${target} PRIVATE -fsanitize=fuzzer)
    target_link_options(${target} PRIVATE -fsanitize=fuzzer)
  elseif(EMMCSIM_BUILD_TESTS)
    set(target ${name}_fuzz_seeds)
    add_executable(${target} ${dir}/${name}_fuzz.cpp ${dir}/replay_main.cpp)
    add_test(NAME fuzz_seeds.${name} COMMAND ${target} ${dir}/corpus/${name}
      --findings ${EMMCSIM_SHARED_DIR}/fuzz-findings ${name}_fuzz-)
    # LeakSanitizer's scan faults on SystemC's coroutine stacks (as in the system scenarios).
    set_tests_properties(fuzz_seeds.${name} PROPERTIES LABELS "fuzz_seeds" TIMEOUT 600
      ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")
  else()
    return()
  endif()
  target_link_libraries(${target} PRIVATE ${arg_LIBS} emmcsim_warnings)
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/testbench/common ${dir})
endfunction()
