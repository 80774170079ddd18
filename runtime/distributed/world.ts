// Which rank this process is, read from its environment (docs/distributed.md, "Launch modes"):
//   - under mpirun (`--hvd`): Open MPI's OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK, or PMI_RANK /
//     PMI_SIZE (Slurm's srun and other PMI launchers);
//   - started by a scheduler or by `--gpus N`: WNDC_RANK, WNDC_WORLD_SIZE, WNDC_MASTER_ADDR,
//     WNDC_MASTER_PORT (and WNDC_LOCAL_RANK), the rendezvous for the GPU engine's NCCL;
//   - neither: a world of one.

export type LaunchEnvironment =
  | { mode: 'single' }
  | { mode: 'mpi'; rank: number; size: number; localRank: number; source: 'Open MPI' | 'PMI' }
  | { mode: 'env'; rank: number; size: number; localRank: number; masterAddr: string; masterPort: number };

export class LaunchEnvironmentError extends Error {
  override name = 'LaunchEnvironmentError';
}

function integer(env: NodeJS.ProcessEnv, name: string, min: number): number {
  const text = env[name];
  const n = text !== undefined && /^\d+$/.test(text.trim()) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min) throw new LaunchEnvironmentError(`${name} must be a whole number of at least ${min}, not ${JSON.stringify(text ?? '')}`);
  return n;
}

function rankAndSize(env: NodeJS.ProcessEnv, rankVar: string, sizeVar: string): { rank: number; size: number } {
  const size = integer(env, sizeVar, 1);
  const rank = integer(env, rankVar, 0);
  if (rank >= size) throw new LaunchEnvironmentError(`${rankVar}=${rank} is not below ${sizeVar}=${size}`);
  return { rank, size };
}

/** The MPI launcher's variables, if this process was started by one. */
export function mpiEnvironment(env: NodeJS.ProcessEnv = process.env): Extract<LaunchEnvironment, { mode: 'mpi' }> | null {
  if (env.OMPI_COMM_WORLD_SIZE !== undefined) {
    const { rank, size } = rankAndSize(env, 'OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE');
    return { mode: 'mpi', rank, size, localRank: env.OMPI_COMM_WORLD_LOCAL_RANK !== undefined ? integer(env, 'OMPI_COMM_WORLD_LOCAL_RANK', 0) : rank, source: 'Open MPI' };
  }
  if (env.PMI_SIZE !== undefined) {
    const { rank, size } = rankAndSize(env, 'PMI_RANK', 'PMI_SIZE');
    return { mode: 'mpi', rank, size, localRank: env.MPI_LOCALRANKID !== undefined ? integer(env, 'MPI_LOCALRANKID', 0) : rank, source: 'PMI' };
  }
  return null;
}

/** The environment-variable rendezvous, if WNDC_RANK is set. */
export function envRendezvous(env: NodeJS.ProcessEnv = process.env): Extract<LaunchEnvironment, { mode: 'env' }> | null {
  if (env.WNDC_RANK === undefined) return null;
  const { rank, size } = rankAndSize(env, 'WNDC_RANK', 'WNDC_WORLD_SIZE');
  const masterAddr = env.WNDC_MASTER_ADDR;
  if (masterAddr === undefined || masterAddr === '') throw new LaunchEnvironmentError('WNDC_MASTER_ADDR must name rank 0\'s host (WNDC_RANK is set)');
  const masterPort = integer(env, 'WNDC_MASTER_PORT', 1);
  if (masterPort > 65535) throw new LaunchEnvironmentError(`WNDC_MASTER_PORT must be a TCP port, not ${masterPort}`);
  return { mode: 'env', rank, size, localRank: env.WNDC_LOCAL_RANK !== undefined ? integer(env, 'WNDC_LOCAL_RANK', 0) : rank, masterAddr, masterPort };
}

/**
 * This process's place: `hvd` (the `--hvd` flag) asks for the MPI launcher's variables. Without it,
 * a process that is one of several MPI ranks is refused, so that N copies never train N separate
 * models into one model_dir.
 */
export function launchEnvironment(hvd: boolean, env: NodeJS.ProcessEnv = process.env): LaunchEnvironment {
  const mpi = mpiEnvironment(env);
  if (hvd) {
    if (mpi === null) throw new LaunchEnvironmentError('--hvd reads the rank from the MPI launcher (OMPI_COMM_WORLD_RANK/SIZE or PMI_RANK/SIZE), and none is set: start with `mpirun -np N wndc run SPEC --hvd`, or use `--workers N`');
    return mpi;
  }
  const rendezvous = envRendezvous(env);
  if (rendezvous !== null) return rendezvous;
  if (mpi !== null && mpi.size > 1) {
    throw new LaunchEnvironmentError(`this process is rank ${mpi.rank} of ${mpi.size} started by ${mpi.source === 'PMI' ? 'a PMI launcher' : 'mpirun'}: add --hvd to train one model data-parallel`);
  }
  return { mode: 'single' };
}
