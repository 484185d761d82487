mpl_add_test(NAME unit_runtime_sampler LABEL unit TIMEOUT 30
             SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_sampler.c)
mpl_add_test(NAME unit_runtime_requests LABEL unit TIMEOUT 30
             SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_requests.c)
