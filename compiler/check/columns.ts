// Checks the `input` section: names, types, defaults and roles of the raw columns.

import type { ColumnDecl, Ident, InputSection, Value } from '../../dsl/ast.js';
import { describeValue } from '../../dsl/ast.js';
import { COLUMN_ROLES, COLUMN_TYPES, NAME_PATTERN, RESERVED_NAMES } from '../../dsl/language.js';
import { didYouMean, suggestNames, type Reporter } from '../diagnostics.js';
import type { ColumnIR, ColumnType, Literal, RolesIR } from '../ir.js';

export interface ColumnInfo {
  decl: ColumnDecl;
  /** Undefined when the type is invalid (already reported). */
  type?: ColumnType;
  list: boolean;
  default: Literal | Literal[] | null;
}

export interface CheckedColumns {
  columns: Map<string, ColumnInfo>;
  roles: { label?: ColumnInfo; group?: ColumnInfo; weight?: ColumnInfo; item?: ColumnInfo };
  /** Roles that an unknown role was probably meant to be (already reported), e.g. `label` for `lable`. */
  misspeltRoles: Set<string>;
}

export function parseColumnType(text: string): { type: ColumnType; list: boolean } | undefined {
  const m = /^(?:list<(int|float|string)>|(int|float|string))$/.exec(text.replace(/\s+/g, ''));
  if (!m) return undefined;
  return m[1] !== undefined ? { type: m[1] as ColumnType, list: true } : { type: m[2] as ColumnType, list: false };
}

export function typeText(type: ColumnType | undefined, list: boolean): string {
  return list ? `list<${type ?? '?'}>` : (type ?? '?');
}

export function checkName(ident: Ident, what: string, reporter: Reporter): boolean {
  if (RESERVED_NAMES.has(ident.name)) {
    reporter.report('WND3011', ident.span, `\`${ident.name}\` is a reserved word and cannot name a ${what}`, { help: `rename it, e.g. \`${ident.name}_${what}\`` });
    return false;
  }
  if (NAME_PATTERN.test(ident.name)) return true;
  // Backticks read best; a name with a backtick or an invisible character is shown JSON-quoted instead.
  const shown = /^[\x21-\x5f\x61-\x7e]+$/.test(ident.name) ? `\`${ident.name}\`` : JSON.stringify(ident.name);
  const plain = plainName(ident.name);
  reporter.report('WND3011', ident.span, `${what} name ${shown} is not a plain identifier`, {
    help: `use letters, digits and \`_\`, starting with a letter or \`_\`${plain === undefined ? '' : `, e.g. \`${plain}\``}`,
  });
  return false;
}

/** `user-name` -> `user_name`, `2nd` -> `_2nd`: a valid name close to an invalid one, if any. */
function plainName(name: string): string | undefined {
  const replaced = name.replace(/[^A-Za-z0-9_]+/g, '_').replace(/^_+|_+$/g, '');
  if (replaced === '') return undefined;
  return /^[0-9]/.test(replaced) ? `_${replaced}` : replaced;
}

export function checkColumns(section: InputSection | undefined, reporter: Reporter): CheckedColumns {
  const columns = new Map<string, ColumnInfo>();
  const roles: CheckedColumns['roles'] = {};
  const misspeltRoles = new Set<string>();
  for (const decl of section?.columns ?? []) {
    checkName(decl.name, 'column', reporter);
    const parsed = parseColumnType(decl.type.text);
    if (parsed === undefined) {
      reporter.report('WND3009', decl.type.span, `unknown column type \`${decl.type.text}\``, {
        help: didYouMean(decl.type.text, COLUMN_TYPES) ?? `expected one of ${COLUMN_TYPES.map((t) => `\`${t}\``).join(', ')}`,
      });
    }
    const info: ColumnInfo = { decl, type: parsed?.type, list: parsed?.list ?? false, default: null };
    if (decl.default !== undefined && parsed !== undefined) info.default = checkDefault(decl.default, parsed.type, parsed.list, decl, reporter) ?? null;
    const earlier = columns.get(decl.name.name);
    if (earlier !== undefined) {
      reporter.report('WND3003', decl.name.span, `column \`${decl.name.name}\` is declared twice`, {
        help: 'rename or remove one of them',
        related: [{ span: earlier.decl.name.span, message: 'first declared here' }],
      });
    } else {
      columns.set(decl.name.name, info);
    }
    if (decl.role !== undefined) checkRole(decl.role, info, roles, misspeltRoles, reporter);
  }
  return { columns, roles, misspeltRoles };
}

function checkDefault(value: Value, type: ColumnType, list: boolean, decl: ColumnDecl, reporter: Reporter): Literal | Literal[] | undefined {
  const expected = typeText(type, list);
  const bad = (): undefined => {
    reporter.report('WND4009', value.span, `default ${describeValue(value)} does not fit column \`${decl.name.name}\` of type \`${expected}\``, {
      help: list ? 'a list column takes a list default such as `[]`' : `write a ${type === 'string' ? 'string such as `""`' : type === 'int' ? 'whole number such as `0`' : 'number such as `0`'}`,
    });
    return undefined;
  };
  const scalar = (v: Value): Literal | undefined => {
    if (type === 'string') return v.type === 'text' ? v.value : undefined;
    if (v.type !== 'number') return undefined;
    return type === 'int' && !Number.isInteger(v.value) ? undefined : v.value;
  };
  if (list) {
    if (value.type !== 'list') return bad();
    const items: Literal[] = [];
    for (const item of value.items) {
      const s = scalar(item);
      if (s === undefined) return bad();
      items.push(s);
    }
    return items;
  }
  return scalar(value) ?? bad();
}

function checkRole(role: Ident, info: ColumnInfo, roles: CheckedColumns['roles'], misspelt: Set<string>, reporter: Reporter): void {
  const name = role.name;
  if (!(COLUMN_ROLES as readonly string[]).includes(name)) {
    // Only YAML can spell a role with its `@` (`role: "@label"`): the role is then named without it.
    const bare = name.replace(/^@/, '');
    const close = (COLUMN_ROLES as readonly string[]).includes(bare) ? [bare] : suggestNames(bare, COLUMN_ROLES);
    close.forEach((r) => misspelt.add(r));
    if (bare !== name && close[0] === bare) {
      reporter.report('WND3010', role.span, `the role is written without \`@\` here, found \`${name}\``, { help: `write \`${bare}\`` });
    } else {
      reporter.report('WND3010', role.span, `unknown column role \`@${bare}\``, {
        help: didYouMean(bare, COLUMN_ROLES) ?? `expected ${COLUMN_ROLES.map((r) => `\`@${r}\``).join(', ')}`,
      });
    }
    return;
  }
  const key = name as keyof CheckedColumns['roles'];
  const earlier = roles[key];
  if (earlier !== undefined) {
    reporter.report('WND5002', role.span, `more than one column is marked \`@${name}\``, {
      help: `keep \`@${name}\` on one column`,
      related: [{ span: earlier.decl.role!.span, message: `\`${earlier.decl.name.name}\` is already the ${name} column` }],
    });
    return;
  }
  roles[key] = info;
  if (info.type === undefined) return;
  const ok =
    !info.list &&
    (key === 'label' ? info.type === 'int' || info.type === 'float' : key === 'weight' ? info.type === 'float' || info.type === 'int' : info.type === 'int' || info.type === 'string');
  if (!ok) {
    const want = key === 'group' || key === 'item' ? '`int` or `string`' : '`int` or `float`';
    const help =
      key === 'label'
        ? `a label is a click (1) or no click (0): declare \`${info.decl.name.name}: int @label\`, converting the data if needed`
        : key === 'weight'
          ? `a weight is a number per row: declare \`${info.decl.name.name}: float @weight\``
          : `${key === 'group' ? 'a group is one id per row (a request, a page view)' : 'an item is one id per row (the ad, the product)'}: declare \`${info.decl.name.name}: ${info.type === 'float' ? 'int' : info.type} @${key}\``;
    reporter.report('WND4012', info.decl.type.span, `the ${name} column \`${info.decl.name.name}\` must be ${want}, not \`${typeText(info.type, info.list)}\``, { help });
  }
}

export function columnIR(info: ColumnInfo): ColumnIR {
  return { name: info.decl.name.name, type: info.type!, list: info.list, default: info.default };
}

export function rolesIR(roles: CheckedColumns['roles']): RolesIR {
  return {
    label: roles.label!.decl.name.name,
    group: roles.group?.decl.name.name ?? null,
    weight: roles.weight?.decl.name.name ?? null,
    item: roles.item?.decl.name.name ?? null,
  };
}
