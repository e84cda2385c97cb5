/* Open MPI's non-blocking collectives on the sizes gpuml's data parallelism moves (the mlp's
 * gradient: 235,008 floats, 0.94 MB), polled with MPI_Test as gpuml's MPI plugin polls them: which
 * all-reduce algorithm to ask libnbc for, and why the reduce-scatter is a ring of messages.
 * Microseconds per call, rank 0's mean over ITERS calls; the buffer is refilled every 64 calls so
 * that sums stay finite.
 *
 *   mpicc -O2 bench/mpi_collectives.c -o /tmp/mpi_collectives
 *   mpirun -np 2 /tmp/mpi_collectives [floats] [iters]                  # libnbc's default choice
 *   mpirun -np 2 --mca coll_libnbc_iallreduce_algorithm ring /tmp/mpi_collectives
 *
 * Rows: Iallreduce in place (gradient buckets); Ireduce_scatter_block (MPI's own); the ring
 * reduce-scatter of gpuml's plugin for 2 ranks (one Isend/Irecv exchange of halves and a sum);
 * Iallgather in place (--zero 1's parameters). The buffers stay in this core's caches between
 * calls, unlike a training step's freshly written gradient: read these as lower bounds. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static void wait_for(MPI_Request* requests, int count) {
  int done = 0;
  while (!done) MPI_Testall(count, requests, &done, MPI_STATUSES_IGNORE);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int n = argc > 1 ? atoi(argv[1]) / size * size : 235008;
  const int iters = argc > 2 ? atoi(argv[2]) : 2000;
  const int share = n / size;
  float* all = malloc(sizeof(float) * (size_t)n);
  float* mine = malloc(sizeof(float) * (size_t)share);
  float* received = malloc(sizeof(float) * (size_t)share);
  const char* names[] = {"Iallreduce (in place)", "Ireduce_scatter_block", "ring reduce-scatter (2 ranks)",
                         "Iallgather (in place)"};
  for (int mode = 0; mode < 4; ++mode) {
    if (mode == 2 && size != 2) continue;
    for (int i = 0; i < n; ++i) all[i] = 1.0f;
    MPI_Barrier(MPI_COMM_WORLD);
    const double start = MPI_Wtime();
    for (int it = 0; it < iters; ++it) {
      MPI_Request requests[2];
      if (mode == 0) {
        MPI_Iallreduce(MPI_IN_PLACE, all, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &requests[0]);
        wait_for(requests, 1);
      } else if (mode == 1) {
        MPI_Ireduce_scatter_block(all, mine, share, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &requests[0]);
        wait_for(requests, 1);
      } else if (mode == 2) {
        const int peer = 1 - rank;
        MPI_Irecv(received, share, MPI_FLOAT, peer, 0, MPI_COMM_WORLD, &requests[0]);
        MPI_Isend(all + (size_t)peer * share, share, MPI_FLOAT, peer, 0, MPI_COMM_WORLD, &requests[1]);
        wait_for(requests, 2);
        const float* own = all + (size_t)rank * share;
        for (int i = 0; i < share; ++i) mine[i] = own[i] + received[i];
      } else {
        MPI_Iallgather(MPI_IN_PLACE, share, MPI_FLOAT, all, share, MPI_FLOAT, MPI_COMM_WORLD, &requests[0]);
        wait_for(requests, 1);
      }
      if (it % 64 == 63)
        for (int i = 0; i < n; ++i) all[i] = 1.0f;
    }
    const double us = (MPI_Wtime() - start) / iters * 1e6;
    if (rank == 0) printf("%-32s %d floats, %d ranks: %8.1f us\n", names[mode], n, size, us);
  }
  free(all);
  free(mine);
  free(received);
  MPI_Finalize();
  return 0;
}
