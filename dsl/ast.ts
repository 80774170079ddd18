// The wndc abstract syntax tree: what both front ends (`.wnd` through chevrotain, YAML through `yaml`)
// produce, and the only thing the checker, lowering, formatter and converter read.
//
// Two forms of one model give the same tree up to spans: identifiers and strings are both `text`
// (whether a text is printed quoted is decided by the parameter's declared type, see language.ts),
// positional call arguments are already named from the callee's signature, numbers are plain numbers.

/** Byte offsets into the source text, end exclusive. Line/column are computed only when printing. */
export interface Span {
  start: number;
  end: number;
}

/** A name written in the source, with where it was written. */
export interface Ident {
  name: string;
  span: Span;
}

export type Value = NumberValue | TextValue | BoolValue | ListValue | CallValue;

export interface NumberValue {
  type: 'number';
  value: number;
  span: Span;
}

/** An identifier, a quoted string, a metric reference like `map@12` or a size like `16GiB`. */
export interface TextValue {
  type: 'text';
  value: string;
  span: Span;
}

export interface BoolValue {
  type: 'bool';
  value: boolean;
  span: Span;
}

export interface ListValue {
  type: 'list';
  items: Value[];
  span: Span;
}

/** `ftrl(learning_rate: 0.2)` in `.wnd`, `{kind: ftrl, learning_rate: 0.2}` in YAML. */
export interface CallValue {
  type: 'call';
  callee: Ident;
  args: Arg[];
  span: Span;
}

export interface Arg {
  /** The parameter name; positional arguments are named from the callee's signature by the front end. */
  name: Ident;
  value: Value;
}

/** Comments kept so that `fmt` and `convert` never lose them. Text without the `#` marker. */
export interface Trivia {
  leadingComments?: string[];
  trailingComment?: string;
}

export interface TypeRef {
  /** As written (`list<int>`); the checker validates it and reports unknown type names. */
  text: string;
  span: Span;
}

/** `clicked: int @label`, `ad_id: int = 0`. */
export interface ColumnDecl extends Trivia {
  name: Ident;
  type: TypeRef;
  default?: Value;
  role?: Ident;
  span: Span;
}

/** `ad_id_h = hashed(ad_id, buckets: 250000)`. */
export interface FeatureDecl extends Trivia {
  name: Ident;
  value: CallValue;
  span: Span;
}

export interface Property extends Trivia {
  key: Ident;
  value: Value;
  span: Span;
}

export type BlockName = 'wide' | 'deep' | 'train' | 'head';
export const BLOCK_NAMES: readonly BlockName[] = ['wide', 'deep', 'train', 'head'];
export type SectionName = 'input' | 'features' | BlockName;
export const SECTION_NAMES: readonly SectionName[] = ['input', 'features', ...BLOCK_NAMES];

export interface Block extends Trivia {
  keyword: Ident;
  props: Property[];
  span: Span;
}

export interface InputSection extends Trivia {
  keyword: Ident;
  columns: ColumnDecl[];
  span: Span;
}

export interface FeaturesSection extends Trivia {
  keyword: Ident;
  features: FeatureDecl[];
  span: Span;
}

export interface ModelAst extends Trivia {
  /** The path as given by the user; used in diagnostics. */
  file: string;
  /** `model outbrain` / `model: outbrain`; absent only in malformed files. */
  name?: Ident;
  input?: InputSection;
  features?: FeaturesSection;
  wide?: Block;
  deep?: Block;
  train?: Block;
  head?: Block;
  /** Comments after the last section (end of file). */
  trailingComments?: string[];
}

/** The text of a value as the user would recognise it, for messages. */
export function describeValue(v: Value): string {
  switch (v.type) {
    case 'number':
      return String(v.value);
    case 'text':
      return JSON.stringify(v.value);
    case 'bool':
      return String(v.value);
    case 'list':
      return 'a list';
    case 'call':
      return `${v.callee.name}(...)`;
  }
}
