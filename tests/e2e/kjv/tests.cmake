# The bundled KJV model (models/kjv): perplexity by `mpillm eval` on 1 rank and 4-rank
# layouts against PyTorch's figure, at a short and at the full context; the demo runs;
# deep pipelines (pp 4, pp 8, dp 2 x pp 4) with every wave in flight give the 1-rank answers.
foreach(ctx 128 512)
  mpl_add_test(NAME e2e_kjv_eval_ctx${ctx} LABEL e2e TIMEOUT 300
               COMMAND ${CMAKE_CURRENT_LIST_DIR}/test_kjv_eval.sh ${ctx})
endforeach()
mpl_add_test(NAME e2e_kjv_demo LABEL e2e TIMEOUT 120
             COMMAND ${CMAKE_CURRENT_LIST_DIR}/test_kjv_demo.sh)
mpl_add_test(NAME e2e_kjv_pipeline LABEL e2e TIMEOUT 300
             COMMAND ${CMAKE_CURRENT_LIST_DIR}/test_kjv_pipeline.sh)
