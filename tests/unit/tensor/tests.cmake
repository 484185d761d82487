mpl_add_test(NAME unit_tensor_kernels LABEL unit TIMEOUT 60 SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_kernels.c)
