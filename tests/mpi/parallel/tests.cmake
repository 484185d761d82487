mpl_add_test(NAME mpi_parallel_grid_4 LABEL mpi RANKS 4 TIMEOUT 60
             SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_grid.c)
mpl_add_test(NAME mpi_parallel_net_delay_4 LABEL mpi RANKS 4 TIMEOUT 30
             SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_net_delay.c)
mpl_add_test(NAME mpi_parallel_launch_report_2 LABEL mpi RANKS 2 TIMEOUT 30
             SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_launch_report.c)
mpl_add_test(NAME mpi_parallel_counter_4 LABEL mpi RANKS 4 TIMEOUT 60
             SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_counter.c)
# The same under Open MPI's osc/pt2pt, the one-sided path of networks without remote
# atomics (TCP; no UCX), where this Open MPI has it: there a take needs the holder in MPI.
if(MPL_MPI_HAS_OSC_PT2PT)
  mpl_add_test(NAME mpi_parallel_counter_pt2pt_4 LABEL mpi RANKS 4 TIMEOUT 60
               COMMAND $<TARGET_FILE:test_mpi_parallel_counter_4> ENVIRONMENT OMPI_MCA_osc=pt2pt)
endif()
