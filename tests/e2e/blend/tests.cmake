mpl_add_test(NAME e2e_blend_cli LABEL e2e RANKS 3 TIMEOUT 180
             COMMAND ${CMAKE_CURRENT_LIST_DIR}/test_blend_cli.sh)
