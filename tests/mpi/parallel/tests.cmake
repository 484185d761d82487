mpl_add_test(NAME mpi_parallel_grid_4 LABEL mpi RANKS 4 TIMEOUT 60
             SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_grid.c)
