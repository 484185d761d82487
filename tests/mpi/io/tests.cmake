# shard sets and collective reads on 4 ranks, incl. a corrupt / missing shard on one rank
mpl_add_test(NAME mpi_io_shard_4 LABEL mpi RANKS 4 TIMEOUT 180 SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_shard.c)
