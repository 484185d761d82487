mpl_add_test(NAME e2e_tokenize LABEL e2e TIMEOUT 60
             COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/tokenize.sh)
