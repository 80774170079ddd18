// One rank of test/distributed.test.ts's collective checks, run under `mpirun -np 2`: the MPI
// collective's operations, rank 0's model broadcast over a differently seeded rank 1, and the
// metric reduction. Rank 0 prints one JSON line of what it saw.

import { compileSource } from '../../compiler/compile.js';
import { broadcastBytes } from '../../runtime/distributed/collective.js';
import { reduceMetrics } from '../../runtime/distributed/metrics.js';
import { MpiCollective } from '../../runtime/distributed/mpi.js';
import { broadcastModel } from '../../runtime/distributed/state.js';
import { TfjsEngine } from '../../runtime/engine/tfjs/engine.js';
import { AucAccumulator, LoglossAccumulator } from '../../runtime/metrics/index.js';

const collective = MpiCollective.open({ timeoutSeconds: 30 });
const { rank } = collective;

const sum32 = await collective.allReduceSum(new Float32Array([rank + 1, 0.5 * rank]));
const sum64 = await collective.allReduceSum(new Float64Array([1e-17 * (rank + 1), rank]));
const gathered = await collective.allGather(new Uint8Array(rank + 1).fill(rank + 10));
const text = new TextDecoder().decode(await broadcastBytes(collective, rank === 0 ? new TextEncoder().encode('from rank 0') : null));

// Rank 1 builds the model from another seed: after the broadcast it must hold rank 0's.
const compiled = compileSource('model m\ninput { y: int @label\n a: int = 0 }\nfeatures { f = identity(a, buckets: 8) }\nwide { features: [f]\n optimizer: ftrl(learning_rate: 0.1) }\ndeep { features: [embedding(f, dim: 2)]\n hidden_units: [3]\n optimizer: adagrad(learning_rate: 0.1) }\n', 'm.wnd', 'wnd');
if (compiled.ir === undefined) throw new Error(JSON.stringify(compiled.diagnostics));
const ir = compiled.ir;
const engine = await TfjsEngine.create({ backend: 'cpu' });
await engine.build(ir, rank === 0 ? 1 : 2);
const position = await broadcastModel(collective, engine, { step: rank === 0 ? 42 : -1 });
const state = await engine.state();
const states = await collective.allGather(new Uint8Array(new Float32Array(state.flatMap((t) => Array.from(t.data))).buffer));

// Each rank scores its half of 8 rows; the merged metrics must be one accumulator's over all 8.
const labels = new Float32Array([1, 0, 0, 1, 1, 0, 1, 0]);
const scores = new Float32Array([0.9, 0.2, 0.4, 0.4, 0.7, 0.1, 0.3, 0.8]);
const half = (a: Float32Array) => a.slice(rank * 4, rank * 4 + 4);
const create = () => [new AucAccumulator(), new LoglossAccumulator()];
const local = create();
for (const acc of local) {
  acc.add(half(labels), half(scores), 4);
  acc.finish();
}
const reduced = await reduceMetrics(collective, local, 4, create);
const single = create();
for (const acc of single) acc.add(labels, scores, 8);

if (rank === 0) {
  process.stdout.write(
    `${JSON.stringify({
      size: collective.size,
      sum32: Array.from(sum32),
      sum64: Array.from(sum64),
      gathered: gathered.map((g) => Array.from(g)),
      text,
      position,
      statesEqual: Buffer.from(states[0]!).equals(Buffer.from(states[1]!)),
      rows: reduced.rows,
      merged: reduced.merged.map((a) => a.result()),
      single: single.map((a) => a.result()),
    })}\n`,
  );
}
await collective.close();
