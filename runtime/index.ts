// `wndc/runtime`: what emitted model modules import, and what the data pipeline and trainers use.

export * from './transforms.js';
export * from './compiled-model.js';
export { IR_VERSION } from '../compiler/ir.js';
export type * from '../compiler/ir.js';
