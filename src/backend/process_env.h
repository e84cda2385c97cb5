// Who this process is among the processes of one job: its rank, the world size and its rank on
// this machine, read from the launcher's environment. gpuml never starts processes or opens
// connections of its own to find out: the launcher (mpirun, srun, torchrun) already knows.
//
//   ProcessPlacement me = detect_process_placement(environment_of_this_process());
//   if (me.world_size > 1) fmt::print("rank {} of {} ({})\n", me.rank, me.world_size, me.launcher);
//
// The launchers are tried in this order, the first one whose variables are set wins:
//   Open MPI  OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK
//   Slurm     SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID
//   torchrun  RANK, WORLD_SIZE, LOCAL_RANK (+ MASTER_ADDR, MASTER_PORT for a rendezvous)
// Open MPI comes before Slurm because `mpirun` inside a Slurm allocation inherits SLURM_* of the
// allocation (one task) while OMPI_* describe the processes it started.
#pragma once

#include <map>
#include <string>

namespace gpuml {

struct ProcessPlacement {
  std::string launcher = "none";  // "open-mpi", "slurm", "torchrun" or "none" (one process)
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr;  // torchrun only: where rank 0 listens for a rendezvous
  int master_port = 0;
  bool distributed() const { return world_size > 1; }
};

using Environment = std::map<std::string, std::string>;

// The placement the environment describes. Throws gpuml::Error naming the variable when a
// launcher's variables are present but wrong (not a number, rank outside [0, size), a size set
// without a rank): a job started half-configured is refused rather than trained as one process.
ProcessPlacement detect_process_placement(const Environment& env);

// This process's environment (environ) as a map.
Environment environment_of_this_process();

// One line for `gpuml info` and the training header: "rank 1 of 2, local rank 1 (Open MPI:
// OMPI_COMM_WORLD_*)", or "one process (no launcher variables: ...)".
std::string describe_placement(const ProcessPlacement& p);

}  // namespace gpuml
