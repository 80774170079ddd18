// AST helpers for tests.

/** The AST without spans: what the two front ends must agree on. */
export function stripSpans(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(stripSpans);
  if (x !== null && typeof x === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(x)) if (k !== 'span') out[k] = stripSpans(v);
    return out;
  }
  return x;
}
