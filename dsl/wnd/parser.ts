// The `.wnd` grammar as a chevrotain CstParser: grammar only, no semantics (the visitor in
// visitor.ts builds the AST). One instance serves the whole process; `parseWnd` feeds it tokens.
//
// Common slips are accepted by the grammar and reported by the visitor instead: `=` where `:`
// belongs and the reverse (both are `Separator`s), a missing `,` between list items or arguments,
// a YAML-style `{kind: ...}` map. The parser then stays in step and the user reads one precise
// error rather than a cascade. Names are consumed as the `Name` category everywhere, section names
// included: chevrotain re-synchronises after an error by the token types that may follow each
// rule, and one type for all names lets it resume at the next declaration.

import { CstParser, EOF, type IParserErrorMessageProvider, type IToken, type TokenType } from 'chevrotain';
import { SECTION_NAMES, type SectionName } from '../ast.js';
import {
  allTokens,
  At,
  Colon,
  Comma,
  describeFound,
  Equals,
  False,
  isVirtual,
  LAngle,
  LBracket,
  LCurly,
  LParen,
  MetricRef,
  Model,
  Name,
  NumberLiteral,
  RAngle,
  RBracket,
  RCurly,
  RParen,
  Separator,
  Size,
  StringLiteral,
  tokenLabel,
  True,
} from './lexer.js';

class WndParser extends CstParser {
  constructor() {
    super(allTokens, { recoveryEnabled: true, nodeLocationTracking: 'onlyOffset', errorMessageProvider: wndErrorMessages, maxLookahead: 3 });
    this.performSelfAnalysis();
  }

  /** file := (header | section)* — the visitor checks that the header comes first and once. */
  file = this.RULE('file', () => {
    // Only what looks like a header or a section is read as one: anything else ends the file rule,
    // and parseWnd starts again at the next section (rather than chevrotain skipping to the end).
    this.MANY({
      GATE: () => this.LA(1).tokenType === Model || this.LA(2).tokenType === LCurly || SECTION_NAMES.includes(this.LA(1).image as SectionName),
      DEF: () => {
        // `model` is a name too, but at the top level it always starts the header.
        this.OR({ IGNORE_AMBIGUITIES: true, MAX_LOOKAHEAD: 1, DEF: [{ ALT: () => this.SUBRULE(this.header) }, { ALT: () => this.SUBRULE(this.section) }] });
      },
    });
  });

  /** header := 'model' Name — the name is left out when `model` is directly followed by a section. */
  header = this.RULE('header', () => {
    this.CONSUME(Model);
    this.OPTION({ GATE: () => this.LA(2).tokenType !== LCurly, DEF: () => this.CONSUME(Name) });
  });

  /** The section name decides how its body is read; unknown names are read as blocks of properties. */
  section = this.RULE('section', () => {
    // One token of lookahead: the gates decide, and a missing `{` is then reported inside the section.
    this.OR({
      IGNORE_AMBIGUITIES: true,
      MAX_LOOKAHEAD: 1,
      DEF: [
        { GATE: () => this.LA(1).image === 'input', ALT: () => this.SUBRULE(this.inputSection) },
        { GATE: () => this.LA(1).image === 'features', ALT: () => this.SUBRULE(this.featuresSection) },
        { ALT: () => this.SUBRULE(this.blockSection) },
      ],
    });
  });

  inputSection = this.RULE('inputSection', () => {
    this.CONSUME(Name, { LABEL: 'keyword' });
    this.CONSUME(LCurly);
    this.MANY(() => this.SUBRULE(this.columnDecl));
    this.CONSUME(RCurly);
  });

  featuresSection = this.RULE('featuresSection', () => {
    this.CONSUME(Name, { LABEL: 'keyword' });
    this.CONSUME(LCurly);
    this.MANY(() => this.SUBRULE(this.featureDecl));
    this.CONSUME(RCurly);
  });

  blockSection = this.RULE('blockSection', () => {
    this.CONSUME(Name, { LABEL: 'keyword' });
    this.CONSUME(LCurly);
    this.MANY(() => this.SUBRULE(this.property));
    this.CONSUME(RCurly);
  });

  /** columnDecl := Name ':' typeRef ('=' value)? ('@' Name)? — `=` instead of `:` is reported by the visitor. */
  columnDecl = this.RULE('columnDecl', () => {
    this.CONSUME(Name);
    this.CONSUME(Separator);
    this.SUBRULE(this.typeRef);
    this.OPTION(() => {
      this.CONSUME2(Equals);
      this.SUBRULE(this.value);
    });
    this.OPTION2(() => {
      this.CONSUME(At);
      this.CONSUME2(Name, { LABEL: 'role' });
    });
  });

  /** typeRef := Name ('<' Name '>')? — which names are types is the checker's business. */
  typeRef = this.RULE('typeRef', () => {
    this.CONSUME(Name);
    this.OPTION(() => {
      this.CONSUME(LAngle);
      this.CONSUME2(Name, { LABEL: 'itemType' });
      this.CONSUME(RAngle);
    });
  });

  /** featureDecl := Name '=' call — `:` instead of `=` is reported by the visitor. */
  featureDecl = this.RULE('featureDecl', () => {
    this.CONSUME(Name);
    this.CONSUME(Separator);
    this.SUBRULE(this.call);
  });

  /** property := Name ':' value — `=` instead of `:` is reported by the visitor. */
  property = this.RULE('property', () => {
    this.CONSUME(Name);
    this.CONSUME(Separator);
    this.SUBRULE(this.value);
  });

  value = this.RULE('value', () => {
    this.OR([
      { ALT: () => this.CONSUME(NumberLiteral) },
      { ALT: () => this.CONSUME(StringLiteral) },
      { ALT: () => this.CONSUME(True) },
      { ALT: () => this.CONSUME(False) },
      { ALT: () => this.CONSUME(MetricRef) },
      { ALT: () => this.CONSUME(Size) },
      { ALT: () => this.SUBRULE(this.list) },
      { ALT: () => this.SUBRULE(this.call) },
      { ALT: () => this.CONSUME(Name) },
      { ALT: () => this.SUBRULE(this.map) },
    ]);
  });

  /**
   * map := '{' (arg ','?)* '}' — not `.wnd` at all but YAML's inline map (`{kind: ftrl, ...}`), read
   * so that the visitor can say how to write it as a call, and the braces stay balanced.
   */
  map = this.RULE('map', () => {
    this.CONSUME(LCurly);
    this.MANY({
      GATE: () => this.nextItemMayFollow(),
      DEF: () => {
        this.SUBRULE(this.arg);
        this.OPTION(() => this.CONSUME(Comma));
      },
    });
    this.CONSUME(RCurly);
  });

  /** list := '[' (value ','?)* ']' — a missing `,` between items is reported by the visitor. */
  list = this.RULE('list', () => {
    this.CONSUME(LBracket);
    this.MANY({
      GATE: () => this.nextItemMayFollow(),
      DEF: () => {
        this.SUBRULE(this.value);
        this.OPTION(() => this.CONSUME(Comma));
      },
    });
    this.CONSUME(RBracket);
  });

  /** call := Name '(' (arg ','?)* ')' — a missing `,` between arguments is reported by the visitor. */
  call = this.RULE('call', () => {
    this.CONSUME(Name);
    this.CONSUME(LParen);
    this.MANY({
      GATE: () => this.nextItemMayFollow(),
      DEF: () => {
        this.SUBRULE(this.arg);
        this.OPTION(() => this.CONSUME(Comma));
      },
    });
    this.CONSUME(RParen);
  });

  /**
   * An item may follow an opening bracket or a comma, or, with the comma missing, the previous item
   * on the same line. Across a line break a missing comma more likely means a missing `)` or `]`:
   * the list ends there and the parser's error and recovery take over.
   */
  private nextItemMayFollow(): boolean {
    const previous = this.LA(0);
    const type = previous.tokenType;
    if (type === LParen || type === LBracket || type === LCurly || type === Comma) return true;
    return previous.endLine === undefined || previous.endLine === this.LA(1).startLine;
  }

  /** arg := Name ':' value | value */
  arg = this.RULE('arg', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(Name, { LABEL: 'argName' });
          this.CONSUME(Colon);
          this.SUBRULE(this.value);
        },
      },
      { ALT: () => this.SUBRULE2(this.value) },
    ]);
  });
}

/** The text of the token before an error, when there is one in the source. */
function previousText(previous: IToken | undefined): string | undefined {
  return previous === undefined || isVirtual(previous) || previous.image === '' ? undefined : previous.image;
}

const after = (previous: IToken | undefined): string => {
  const text = previousText(previous);
  return text === undefined ? '' : ` after \`${text}\``;
};

const SECTION_BODIES: Readonly<Record<string, string>> = {
  inputSection: 'a column declaration like `name: int`',
  featuresSection: 'a feature declaration like `name = hashed(column, buckets: 1000)`',
  blockSection: 'a property like `name: value`',
};

/** What the parser expected, said in the user's terms; rule names come from the grammar above. */
function mismatchMessage(expected: TokenType, actual: IToken, previous: IToken | undefined, ruleName: string): string {
  const found = describeFound(actual);
  const prev = previousText(previous);
  const body = SECTION_BODIES[ruleName];
  if (body !== undefined) {
    if (expected === LCurly) return `expected \`{\` after section name${prev === undefined ? '' : ` \`${prev}\``}, found ${found}`;
    if (expected === RCurly) return `expected ${body} or \`}\`, found ${found}`;
  }
  switch (`${ruleName}:${expected.name}`) {
    case 'file:EOF':
      return `expected a section like \`input {\`, found ${found}`;
    case 'header:Name':
      return `expected a model name after \`model\`, found ${found}`;
    case 'columnDecl:Separator':
      return `expected \`:\` after column name${prev === undefined ? '' : ` \`${prev}\``}, found ${found}`;
    case 'columnDecl:Name':
      return prev === '@' ? `expected a role after \`@\` (\`label\`, \`group\` or \`weight\`), found ${found}` : `expected a column name, found ${found}`;
    case 'typeRef:Name':
      return prev === '<'
        ? `expected an item type after \`<\`, like \`list<string>\`, found ${found}`
        : `expected a column type like \`int\`, \`float\`, \`string\` or \`list<string>\`${after(previous)}, found ${found}`;
    case 'typeRef:RAngle':
      return `expected \`>\` to close the list type, found ${found}`;
    case 'featureDecl:Separator':
      return `expected \`=\` after feature name${prev === undefined ? '' : ` \`${prev}\``}, found ${found}`;
    case 'property:Separator':
      return `expected \`:\` after property name${prev === undefined ? '' : ` \`${prev}\``}, found ${found}`;
    case 'call:Name':
      return `expected a feature kind like \`hashed(column, buckets: 1000)\`${after(previous)}, found ${found}`;
    case 'call:LParen':
      return `expected \`(\` after \`${prev ?? 'the name'}\`: features are declared by calling a feature kind, found ${found}`;
    case 'call:RParen':
      return prev === '(' ? `expected an argument or \`)\` after \`(\`, found ${found}` : `expected \`,\` or \`)\` after an argument, found ${found}`;
    case 'map:RCurly':
      return `expected \`,\` or \`}\` after an entry, found ${found}`;
    case 'list:RBracket':
      return prev === '[' ? `expected a value or \`]\` after \`[\`, found ${found}` : `expected \`,\` or \`]\` after a list item, found ${found}`;
    case 'arg:Colon':
      return `expected \`:\` after argument name${prev === undefined ? '' : ` \`${prev}\``}, found ${found}`;
    default:
      return `expected ${tokenLabel(expected)}${after(previous)}, found ${found}`;
  }
}

/** Chevrotain's default wording (`--> Alpha <--`) never reaches users: every message is built here. */
export const wndErrorMessages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage: ({ expected, actual, previous, ruleName }) => mismatchMessage(expected, actual, previous, ruleName),
  buildNotAllInputParsedMessage: ({ firstRedundant }) => `expected a section like \`input {\`, found ${describeFound(firstRedundant)}`,
  buildNoViableAltMessage: ({ actual, previous, ruleName }) => {
    const found = describeFound(actual[0] ?? { tokenType: EOF } as IToken);
    if (ruleName === 'value' || ruleName === 'arg') return `expected a value (a number, string, name, list or call)${after(previous)}, found ${found}`;
    return `unexpected ${found}${after(previous)}`;
  },
  buildEarlyExitMessage: ({ actual, previous }) => `unexpected ${describeFound(actual[0] ?? { tokenType: EOF } as IToken)}${after(previous)}`,
};

/** The one parser of the process (chevrotain parsers are built once and reused by resetting `input`). */
export const wndParser = new WndParser();
export type { WndParser };
