mpl_add_test(NAME unit_model_part LABEL unit TIMEOUT 30 SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_part.c)
