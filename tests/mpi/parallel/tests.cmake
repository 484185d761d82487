mpl_add_test(NAME mpi_parallel_grid_4 LABEL mpi RANKS 4 TIMEOUT 60
             SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_grid.c)
mpl_add_test(NAME mpi_parallel_net_delay_4 LABEL mpi RANKS 4 TIMEOUT 30
             SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_net_delay.c)
mpl_add_test(NAME mpi_parallel_launch_report_2 LABEL mpi RANKS 2 TIMEOUT 30
             SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_launch_report.c)
mpl_add_test(NAME mpi_parallel_counter_4 LABEL mpi RANKS 4 TIMEOUT 60
             SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_counter.c)
