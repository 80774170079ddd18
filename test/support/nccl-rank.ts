// One rank of test/env-rendezvous.test.ts's NCCL collective checks, started with WNDC_RANK,
// WNDC_WORLD_SIZE, WNDC_MASTER_ADDR, WNDC_MASTER_PORT and WNDC_LOCAL_RANK:
//   node --import tsx test/support/nccl-rank.ts ops TIMEOUT_S      every operation; prints one JSON line
//   node --import tsx test/support/nccl-rank.ts timeout TIMEOUT_S  rank 0 all-reduces, rank 1 never does:
//                                                                    rank 0 prints the error and how long it took
import { broadcastBytes } from '../../runtime/distributed/collective.js';
import { NcclCollective } from '../../runtime/distributed/nccl.js';
import { envRendezvous } from '../../runtime/distributed/world.js';

const [mode, timeoutText] = process.argv.slice(2) as [string, string];
const environment = envRendezvous();
if (environment === null) throw new Error('WNDC_RANK is not set');
const collective = await NcclCollective.open({ ...environment, timeoutSeconds: Number(timeoutText) });
const { rank } = collective;

if (mode === 'ops') {
  const sum32 = await collective.allReduceSum(new Float32Array([rank + 1, 0.5 * rank, -rank]));
  const sum64 = await collective.allReduceSum(new Float64Array([1e-17 * (rank + 1), rank, 2 ** 40 + rank]));
  // Rank r sends r + 1 bytes of value r + 10 (rank 1's longer than rank 0's); then two empty strings.
  const gathered = await collective.allGather(new Uint8Array(rank + 1).fill(rank + 10));
  const empty = await collective.allGather(new Uint8Array(0));
  const broadcast = await collective.broadcast(new Int32Array(rank === 1 ? [7, -8, 9] : [0, 0, 0]), 1);
  const text = new TextDecoder().decode(await broadcastBytes(collective, rank === 0 ? new TextEncoder().encode('from rank 0') : null));
  // A large buffer: the scratch buffer grows.
  const large = await collective.allReduceSum(new Float32Array(1 << 20).fill(rank + 1));
  await collective.barrier();
  await collective.close();
  process.stdout.write(
    `${JSON.stringify({
      rank,
      size: collective.size,
      backend: collective.backend,
      sum32: Array.from(sum32),
      sum64: Array.from(sum64),
      gathered: gathered.map((g) => Array.from(g)),
      empty: empty.map((g) => g.length),
      broadcast: Array.from(broadcast),
      text,
      large: [large[0], large[large.length - 1], large.every((v) => v === 3)],
    })}\n`,
  );
} else if (mode === 'timeout') {
  if (rank === 0) {
    const started = performance.now();
    try {
      await collective.allReduceSum(new Float32Array(4));
      process.stdout.write(`${JSON.stringify({ error: null })}\n`);
    } catch (e) {
      process.stdout.write(`${JSON.stringify({ error: (e as Error).message, seconds: (performance.now() - started) / 1000 })}\n`);
    }
    // Nothing may follow a timed-out operation.
    const after = await collective.barrier().then(() => null, (e: Error) => e.message);
    process.stdout.write(`${JSON.stringify({ after })}\n`);
    process.exit(0);
  } else {
    // Alive, joined, but never calls: the test kills it.
    await new Promise((resolve) => setTimeout(resolve, 120_000));
  }
} else {
  throw new Error(`unknown mode ${mode}`);
}
