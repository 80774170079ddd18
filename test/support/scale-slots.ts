// A model state whose optimizer slots differ from a fresh build's: every slot tensor (named
// `<parameter>/<slot>`) times `factor`, parameters as they are. The data-parallel GPU tests give it
// to rank 0 alone before the ranks join, so that only rank 0's broadcast can make the ranks agree.
import type { NamedTensor } from '../../runtime/engine/engine.js';

export function scaleSlots(state: readonly NamedTensor[], factor: number): NamedTensor[] {
  const names = new Set(state.map((t) => t.name));
  const isSlot = (name: string) => {
    const cut = name.lastIndexOf('/');
    return cut > 0 && names.has(name.slice(0, cut));
  };
  return state.map((t) => (isSlot(t.name) ? { ...t, data: t.data.map((v) => v * factor) } : t));
}
