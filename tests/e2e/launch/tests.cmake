# launch/mpillm-run builds the mpirun command it promises and its ranks see it.
mpl_add_test(NAME e2e_launch_mpillm_run LABEL e2e RANKS 2 TIMEOUT 60
             COMMAND ${CMAKE_CURRENT_LIST_DIR}/test_mpillm_run.sh)
