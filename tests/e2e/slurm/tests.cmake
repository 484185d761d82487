# A throw-away Slurm (2 emulated nodes) runs the batch templates of launch/slurm/.
mpl_add_test(NAME e2e_slurm_templates LABEL e2e TIMEOUT 180
             COMMAND ${CMAKE_CURRENT_LIST_DIR}/test_slurm_templates.sh)
set_tests_properties(e2e_slurm_templates PROPERTIES SKIP_RETURN_CODE 77)
