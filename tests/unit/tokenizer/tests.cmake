mpl_add_test(NAME unit_tokenizer LABEL unit TIMEOUT 60
             SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_tokenizer.c)
