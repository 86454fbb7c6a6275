/**
 * SQL literal helpers. Query parameters ({x:Type}) do not exist on ClickHouse 18.16, so every value that
 * reaches a query text goes through one of these.
 */

/** Backquoted identifier; backquote and backslash escaped as ClickHouse expects. */
export function ident(name: string): string {
  return '`' + name.replace(/\\/g, '\\\\').replace(/`/g, '\\`') + '`';
}

/** `db`.`table` */
export function qualified(database: string, table: string): string {
  return `${ident(database)}.${ident(table)}`;
}

/** Single-quoted string literal. */
export function str(value: string): string {
  return "'" + value.replace(/\\/g, '\\\\').replace(/'/g, "\\'") + "'";
}

/** Unsigned integer literal; refuses anything that is not a safe non-negative integer. */
export function uint(value: number): string {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`not an unsigned integer: ${value}`);
  return String(value);
}
