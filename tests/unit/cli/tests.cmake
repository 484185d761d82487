mpl_add_test(NAME unit_cli_options LABEL unit SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_options.c)
