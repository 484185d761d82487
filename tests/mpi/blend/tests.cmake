# The seed network at fewer, as many and more ranks than its L = 5 sub-models (and 4
# ranks: more than the L = 3 fixture's sub-models, in groups of 3 + 1). One program,
# run at each rank count.
mpl_add_test(NAME mpi_blend_1 LABEL mpi RANKS 1 TIMEOUT 30
             SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_blend.c)
foreach(n 2 4 5 7)
  mpl_add_test(NAME mpi_blend_${n} LABEL mpi RANKS ${n} TIMEOUT 60
               COMMAND $<TARGET_FILE:test_mpi_blend_1>)
endforeach()
