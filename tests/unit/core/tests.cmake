mpl_add_test(NAME unit_core LABEL unit SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_core.c
             ENVIRONMENT ASAN_OPTIONS=allocator_may_return_null=1)
