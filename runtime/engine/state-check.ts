// The check every engine's loadState makes, with the same messages, so that a checkpoint moves
// between engines (and a wrong one is refused the same way by each).
import type { NamedTensor } from './engine.js';

/** What a model expects of one tensor of a state: its shape and number of values. */
export interface StateTarget {
  shape: readonly number[];
  size: number;
}

/**
 * Throws unless `tensors` holds exactly the names of `targets`, each with the target's shape;
 * returns the tensors by name.
 */
export function checkState(model: string, targets: ReadonlyMap<string, StateTarget>, tensors: readonly NamedTensor[]): Map<string, NamedTensor> {
  const given = new Map(tensors.map((t) => [t.name, t]));
  const missing = [...targets.keys()].filter((name) => !given.has(name));
  const unknown = [...given.keys()].filter((name) => !targets.has(name));
  if (missing.length > 0 || unknown.length > 0) {
    throw new Error(`the state does not fit the model \`${model}\`:${missing.length > 0 ? ` missing ${list(missing)}` : ''}${unknown.length > 0 ? ` unknown ${list(unknown)}` : ''}`);
  }
  for (const [name, target] of targets) {
    const t = given.get(name)!;
    if (t.shape.join('x') !== target.shape.join('x') || t.data.length !== target.size) {
      throw new Error(`the state's \`${name}\` has shape [${t.shape.join(', ')}], the model's [${target.shape.join(', ')}]`);
    }
  }
  return given;
}

function list(names: string[]): string {
  const shown = names.slice(0, 5).map((n) => `\`${n}\``).join(', ');
  return names.length > 5 ? `${shown} and ${names.length - 5} more` : shown;
}
