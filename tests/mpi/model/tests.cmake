# the engine against transformers on tp = 1..4 ranks (uneven splits at 3, KV heads
# replicated at 4 for the 2-KV-head fixtures)
foreach(n 1 2 3 4)
  mpl_add_test(NAME mpi_model_golden_${n} LABEL mpi RANKS ${n} TIMEOUT 120
               SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_golden.c)
endforeach()
# the thread pool inside the forward pass (matvec rows, tiles, attention heads)
mpl_add_test(NAME mpi_model_golden_threads LABEL mpi RANKS 1 TIMEOUT 120
             SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_golden.c ENVIRONMENT MPILLM_THREADS=3)
