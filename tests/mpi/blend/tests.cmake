# The seed network at fewer, as many and more ranks than its L = 5 sub-models (and 4
# ranks: more than the L = 3 fixture's sub-models, in groups of 3 + 1); bad input at
# 3 ranks, where one rank alone sees a damaged sub-model. One program, filtered by
# suite (-s) or case (-t) to keep each run short under the sanitizers.
mpl_add_test(NAME mpi_blend_1 LABEL mpi RANKS 1 TIMEOUT 60
             SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_blend.c)
mpl_add_test(NAME mpi_blend_2 LABEL mpi RANKS 2 TIMEOUT 90
             COMMAND $<TARGET_FILE:test_mpi_blend_1> -s blend_modes)
mpl_add_test(NAME mpi_blend_errors_3 LABEL mpi RANKS 3 TIMEOUT 90
             COMMAND $<TARGET_FILE:test_mpi_blend_1> -s blend_errors)
mpl_add_test(NAME mpi_blend_4 LABEL mpi RANKS 4 TIMEOUT 90
             COMMAND $<TARGET_FILE:test_mpi_blend_1> -t test_keras_L3_all_modes)
foreach(n 5 7)
  mpl_add_test(NAME mpi_blend_${n} LABEL mpi RANKS ${n} TIMEOUT 120
               COMMAND $<TARGET_FILE:test_mpi_blend_1> -t test_keras_L5_all_modes)
endforeach()
