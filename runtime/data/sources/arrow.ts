// Apache Arrow IPC files (the random-access "file" format, `.arrow`/`.feather` v2) and streams
// (`.arrows`), read a record batch at a time through apache-arrow; which of the two a file is
// comes from its first bytes, not its name.

import { open } from 'node:fs/promises';
import { RecordBatchReader, type RecordBatch, type Vector } from 'apache-arrow';
import type { ModelIR } from '../../../compiler/ir.js';
import { DataError, type RawChunk, type RawRecord, type RawSource } from '../contracts.js';
import { ChunkBuilder, DEFAULT_CHUNK_ROWS, recordFactory } from './chunks.js';
import { bindColumns, type BoundColumn } from './columns.js';
import { BAD, Converter } from './convert.js';
import type { SourceOptions } from './options.js';

export class ArrowSource implements RawSource {
  readonly format = 'arrow';
  private readonly converter: Converter;

  constructor(
    readonly files: readonly string[],
    private readonly ir: ModelIR,
    private readonly options: SourceOptions,
  ) {
    this.converter = new Converter(options.listSeparator ?? '|');
  }

  async *chunks(onBadRow?: (error: DataError) => void): AsyncGenerator<RawChunk> {
    for (const file of this.files) yield* this.fileChunks(file, onBadRow);
  }

  private async *fileChunks(file: string, onBadRow: ((error: DataError) => void) | undefined): AsyncGenerator<RawChunk> {
    const handle = await open(file, 'r');
    const builder = new ChunkBuilder(file, this.options.chunkRows ?? DEFAULT_CHUNK_ROWS);
    const converter = this.converter;
    try {
      let reader;
      try {
        reader = await RecordBatchReader.from(handle);
        await reader.open();
      } catch (error) {
        throw new DataError({ file, row: 0 }, null, `cannot read the file as Arrow IPC: ${problemOf(error)}`);
      }
      let bound: BoundColumn[] | null = null;
      let makeRecord: ((values: readonly unknown[]) => RawRecord) | null = null;
      for await (const batch of reader as AsyncIterable<RecordBatch>) {
        bound ??= bindColumns(
          file,
          batch.schema.fields.map((field) => field.name),
          this.ir,
        );
        const keys = bound.map((b) => b.column.name);
        makeRecord ??= recordFactory(keys);
        const values: unknown[] = new Array(keys.length);
        const vectors = bound.map((b) => batch.getChildAt(b.index)!);
        rows: for (let r = 0; r < batch.numRows; r++) {
          for (let j = 0; j < keys.length; j++) {
            const value = converter.value(plain(vectors[j]!.get(r)), bound[j]!.column);
            if (value === BAD) {
              const full = builder.skip(new DataError({ file, row: builder.rowNumber }, keys[j]!, converter.problem), onBadRow);
              if (full !== null) yield full;
              continue rows;
            }
            values[j] = value;
          }
          const full = builder.add(makeRecord!(values));
          if (full !== null) yield full;
        }
      }
      // A file with a schema and no batches still names its columns.
      if (bound === null && reader.schema !== undefined) {
        bindColumns(
          file,
          reader.schema.fields.map((field) => field.name),
          this.ir,
        );
      }
    } finally {
      await handle.close();
    }
    const rest = builder.finish();
    if (rest !== null) yield rest;
  }

  async close(): Promise<void> {}
}

/** A list cell comes as an Arrow Vector: its values as an array for the converter. */
function plain(value: unknown): unknown {
  if (value !== null && typeof value === 'object' && typeof (value as Vector).toArray === 'function' && 'type' in value) {
    return [...(value as Vector)];
  }
  return value;
}

function problemOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0]!.replace(/\.$/, '');
}
