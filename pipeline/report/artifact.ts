import { contract } from '../artifacts/contract.js';

/**
 * The report artifact: `report.html` (one self-contained page) and `summary.md` (for CI job
 * summaries). No stage reads it.
 */
export const REPORT_FILE = 'report.html';
export const SUMMARY_FILE = 'summary.md';

export const reportArtifact = contract('report', import.meta.url, {});
