// The header row of a CSV/TSV file, read in JavaScript (a few kilobytes): the reader then knows
// the file's columns exactly and asks DuckDB for them by position, with no type sniffing.

import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';

/**
 * The fields of the first record of `file` (RFC 4180: a quoted field may hold the delimiter,
 * doubled quotes and line breaks). `quote` null: no quoting (TSV). Null for an empty file.
 */
export async function readHeader(file: string, delimiter: string, quote: string | null): Promise<string[] | null> {
  let raw: NodeJS.ReadableStream = createReadStream(file, { highWaterMark: 64 * 1024 });
  if (file.toLowerCase().endsWith('.gz')) raw = raw.pipe(createGunzip());
  let text = '';
  let first = true;
  try {
    for await (const piece of raw) {
      text += typeof piece === 'string' ? piece : (piece as Buffer).toString('utf8');
      if (first) {
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // byte order mark
        first = false;
      }
      const fields = parseFirstRecord(text, delimiter, quote, false);
      if (fields !== null) return fields;
    }
  } finally {
    (raw as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
  }
  return text.length === 0 ? null : parseFirstRecord(text, delimiter, quote, true);
}

/** The first record of `text`, or null when it may continue past the end of `text`. */
export function parseFirstRecord(text: string, delimiter: string, quote: string | null, atEnd: boolean): string[] | null {
  const fields: string[] = [];
  let field = '';
  let i = 0;
  let quoted = false;
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === quote) {
        if (text[i + 1] === quote) {
          field += c;
          i += 2;
          continue;
        }
        if (i + 1 === text.length && !atEnd) return null;
        quoted = false;
      } else field += c;
      i++;
      continue;
    }
    if (c === quote && field.length === 0) quoted = true;
    else if (c === delimiter) {
      fields.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      fields.push(field);
      return fields;
    } else field += c;
    i++;
  }
  if (!atEnd) return null;
  fields.push(field);
  return fields;
}
