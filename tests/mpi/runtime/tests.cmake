# every dp x pp x tp layout of 2-4 ranks on the three fixtures against the
# one-rank-per-replica run (dp = ranks), plus layouts the model or world cannot take
foreach(n 2 3 4)
  mpl_add_test(NAME mpi_runtime_layouts_${n} LABEL mpi RANKS ${n} TIMEOUT 240
               SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_layouts.c)
endforeach()
