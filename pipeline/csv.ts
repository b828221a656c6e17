import { stringify } from 'csv-stringify/sync';

/**
 * CSV for people who open it in a spreadsheet. A text cell that begins with `=`, `+`, `-`, `@`,
 * a tab or a carriage return is what Excel, LibreOffice and Google Sheets run as a formula (an
 * `=HYPERLINK(...)` title from the data would become a live link); as OWASP advises for CSV
 * injection, such a cell gets a leading `'`, which spreadsheets show as text. Numbers are numbers
 * and stay as they are (-0.5 is not a formula).
 */
const FORMULA_START = /^[=+\-@\t\r]/;

export function safeCell(value: unknown): unknown {
  return typeof value === 'string' && FORMULA_START.test(value) ? `'${value}` : value;
}

/** Rows as CSV with a header line, every text cell made safe to open. */
export function toCsv(rows: Record<string, unknown>[], columns: string[]): string {
  return stringify(
    rows.map((row) => Object.fromEntries(columns.map((c) => [c, safeCell(row[c])]))),
    { header: true, columns },
  );
}
