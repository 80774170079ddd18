// Fault injection for the tests of failure handling (test/distributed.test.ts): WNDC_FAULT set to
// `<rank>:<step>:<kind>` makes that rank, on reaching that step, die at once (`exit`: SIGKILL, as a
// crash or the out-of-memory killer would) or stop answering (`hang`: a busy loop that never
// yields, so its heartbeats stop too). Unset, nothing happens.

export interface InjectedFault {
  atStep(step: number): void;
}

export function injectedFault(rank: number, spec: string | undefined = process.env.WNDC_FAULT): InjectedFault | null {
  if (spec === undefined || spec === '') return null;
  const match = /^(\d+):(\d+):(exit|hang)$/.exec(spec);
  if (match === null) throw new Error(`WNDC_FAULT must be <rank>:<step>:exit|hang, not ${JSON.stringify(spec)}`);
  if (Number(match[1]) !== rank) return null;
  const step = Number(match[2]);
  const kind = match[3];
  return {
    atStep(current: number): void {
      if (current !== step) return;
      if (kind === 'exit') process.kill(process.pid, 'SIGKILL');
      const until = Number.POSITIVE_INFINITY;
      while (Date.now() < until) {
        // hang: never yield to the event loop
      }
    },
  };
}
