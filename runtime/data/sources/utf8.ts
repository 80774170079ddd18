// Decoding many short UTF-8 strings (ids, hex hashes, category names): TextDecoder costs about
// a microsecond a call, so short ASCII text is built directly and only the rest goes through it.

const decoder = new TextDecoder();

export function decodeUtf8(bytes: Uint8Array, start = 0, length = bytes.length - start): string {
  if (length > 32) return decoder.decode(bytes.subarray(start, start + length));
  let text = '';
  for (let k = 0; k < length; k++) {
    const b = bytes[start + k]!;
    if (b >= 0x80) return decoder.decode(bytes.subarray(start, start + length));
    text += String.fromCharCode(b);
  }
  return text;
}
