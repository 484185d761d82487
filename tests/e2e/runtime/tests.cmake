# generate / eval / bench from the command line on 1 and 2 ranks: streaming, JSON
# answers in request order equal on every layout, logits file, perplexity, the bench
# table and JSON, and one clear error with a non-zero exit for bad layouts and input.
mpl_add_test(NAME e2e_runtime_cli LABEL e2e RANKS 2 TIMEOUT 240
             COMMAND ${CMAKE_CURRENT_LIST_DIR}/test_cli.sh)
