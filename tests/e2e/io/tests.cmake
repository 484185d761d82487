mpl_add_test(NAME e2e_io_convert_inspect LABEL e2e TIMEOUT 120
             COMMAND ${CMAKE_CURRENT_LIST_DIR}/test_convert_inspect.sh)
mpl_add_test(NAME e2e_io_shard_cli LABEL e2e TIMEOUT 120
             COMMAND ${CMAKE_CURRENT_LIST_DIR}/test_shard_cli.sh)
mpl_add_test(NAME e2e_io_shard_generate LABEL e2e RANKS 4 TIMEOUT 180
             COMMAND ${CMAKE_CURRENT_LIST_DIR}/test_shard_generate.sh)
