# every dp x pp x tp layout of 2-4 ranks on the three fixtures against the
# one-rank-per-replica run (dp = ranks), plus layouts the model or world cannot take
foreach(n 2 3 4)
  mpl_add_test(NAME mpi_runtime_layouts_${n} LABEL mpi RANKS ${n} TIMEOUT 240
               SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_layouts.c)
endforeach()
# dp 2 x (pp, tp) of 4 ranks again under osc/pt2pt: the replicas' request counter
# served by rank 0's progress calls in the forward pass
if(MPL_MPI_HAS_OSC_PT2PT)
  mpl_add_test(NAME mpi_runtime_layouts_pt2pt_4 LABEL mpi RANKS 4 TIMEOUT 240
               COMMAND $<TARGET_FILE:test_mpi_runtime_layouts_4> ENVIRONMENT OMPI_MCA_osc=pt2pt)
endif()
