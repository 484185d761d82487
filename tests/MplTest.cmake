# mpl_add_test: the one way a test is registered.
#
#   mpl_add_test(NAME name LABEL unit|mpi|e2e [RANKS n] [TIMEOUT s]
#                SOURCES a.c b.c ...        # a CUnit program built with the shared runner
#              | COMMAND prog args ...)     # any program or script
#                [ENVIRONMENT VAR=value ...])
#
# Tests with RANKS > 1 (or LABEL mpi) run under mpiexec with the flags a 2-core
# machine and root need; every test has a TIMEOUT (default 60 s) so nothing hangs CI.
# Scripts get MPILLM_BIN (the built binary), MPILLM_SOURCE_DIR, MPILLM_BUILD_DIR,
# MPIEXEC and MPIEXEC_FLAGS in their environment.
set(MPL_TEST_RUNNER ${PROJECT_SOURCE_DIR}/tests/runner/runner.c)

# MPL_MPI_HAS_OSC_PT2PT: this Open MPI has osc/pt2pt (one-sided through messages, what
# networks without remote atomics get), for the tests that run again under it
get_filename_component(mpl_mpi_bin ${MPIEXEC_EXECUTABLE} DIRECTORY)
find_program(MPL_OMPI_INFO ompi_info HINTS ${mpl_mpi_bin})
set(MPL_MPI_HAS_OSC_PT2PT OFF)
if(MPL_OMPI_INFO)
  execute_process(COMMAND ${MPL_OMPI_INFO} OUTPUT_VARIABLE mpl_ompi_components ERROR_QUIET)
  if(mpl_ompi_components MATCHES "MCA osc: pt2pt")
    set(MPL_MPI_HAS_OSC_PT2PT ON)
  endif()
endif()
set(MPL_MPIEXEC_FLAGS --oversubscribe --bind-to none)

function(mpl_add_test)
  cmake_parse_arguments(T "" "NAME;LABEL;RANKS;TIMEOUT" "SOURCES;COMMAND;ENVIRONMENT" ${ARGN})
  if(NOT T_NAME OR NOT T_LABEL)
    message(FATAL_ERROR "mpl_add_test needs NAME and LABEL")
  endif()
  if(NOT T_RANKS)
    set(T_RANKS 1)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 60)
  endif()
  if(T_SOURCES)
    add_executable(test_${T_NAME} ${T_SOURCES} ${MPL_TEST_RUNNER})
    target_include_directories(test_${T_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/tests/runner
                                                      ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(test_${T_NAME} PRIVATE mpillm_cli PkgConfig::CUNIT)
    if(T_LABEL STREQUAL "mpi")
      target_compile_definitions(test_${T_NAME} PRIVATE MPL_TEST_MPI=1)
    endif()
    set(cmd $<TARGET_FILE:test_${T_NAME}>)
  elseif(T_COMMAND)
    set(cmd ${T_COMMAND})
  else()
    message(FATAL_ERROR "mpl_add_test(${T_NAME}) needs SOURCES or COMMAND")
  endif()
  if(T_LABEL STREQUAL "mpi")
    set(cmd ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${T_RANKS} ${MPL_MPIEXEC_FLAGS} ${cmd})
  endif()
  add_test(NAME ${T_NAME} COMMAND ${cmd} WORKING_DIRECTORY ${PROJECT_BINARY_DIR})
  string(REPLACE ";" " " flags "${MPL_MPIEXEC_FLAGS}")
  set_tests_properties(${T_NAME} PROPERTIES
    LABELS ${T_LABEL}
    TIMEOUT ${T_TIMEOUT}
    PROCESSORS ${T_RANKS}
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;OMPI_MCA_btl_vader_single_copy_mechanism=none;OPENBLAS_NUM_THREADS=1;MPILLM_THREADS=1;MPILLM_BIN=$<TARGET_FILE:mpillm>;MPILLM_SOURCE_DIR=${PROJECT_SOURCE_DIR};MPILLM_BUILD_DIR=${PROJECT_BINARY_DIR};MPIEXEC=${MPIEXEC_EXECUTABLE};MPIEXEC_FLAGS=${flags};${T_ENVIRONMENT}")
endfunction()
