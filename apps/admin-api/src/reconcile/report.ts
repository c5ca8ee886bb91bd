import { MISMATCH_CLASSES, type ReconcileReport } from './compare.js';

/** What an operator does with each class: README "Reconciliation" has the runbook. */
const MEANING: Record<(typeof MISMATCH_CLASSES)[number], string> = {
  charged_not_succeeded: 'charged at the gateway, not SUCCEEDED here',
  succeeded_without_charge: 'SUCCEEDED here, no charge at the gateway',
  amount_mismatch: 'amount or currency differs',
  duplicate_charge: 'more than one charge for an order',
  refund_missing_here: 'refund at the gateway, not SUCCEEDED here',
  refund_missing_there: 'SUCCEEDED refund here, none at the gateway',
  refunded_total_mismatch: 'refunded total differs',
  malformed_row: 'report rows that cannot be read',
};

/** The report as a plain table (bold headings when `tty`), with the first rows of each class. */
export function formatTable(report: ReconcileReport, tty: boolean): string {
  const bold = (text: string) => (tty ? `\u001b[1m${text}\u001b[0m` : text);
  const window = `${report.window.since ?? '-∞'} … ${report.window.until ?? '+∞'}`;
  const lines = [
    bold(`reconciliation of ${report.rowsRead} report row(s), window ${window}`),
    `rows outside the window (not compared): ${report.rowsOutsideWindow}; straddling an edge here (not judged): ${report.straddling.payments} payment(s), ${report.straddling.refunds} refund(s)`,
    '',
  ];
  const width = Math.max(...MISMATCH_CLASSES.map((c) => c.length));
  lines.push(bold(`${'class'.padEnd(width)}  count  meaning`));
  for (const cls of MISMATCH_CLASSES) lines.push(`${cls.padEnd(width)}  ${String(report.classes[cls].count).padStart(5)}  ${MEANING[cls]}`);
  for (const cls of MISMATCH_CLASSES) {
    const { count, first } = report.classes[cls];
    if (count === 0) continue;
    lines.push('', bold(`${cls} (${count}${count > first.length ? `, first ${first.length}` : ''})`));
    for (const m of first) {
      lines.push(`  ${m.line === undefined ? '' : `line ${m.line}  `}${m.orderId === undefined ? '' : `order ${m.orderId}  `}${m.detail}`);
    }
  }
  lines.push(
    '',
    report.mismatches === 0 ? 'clean: no mismatch' : bold(`${report.mismatches} mismatch(es): see the runbook in README "Reconciliation"`),
  );
  return `${lines.join('\n')}\n`;
}
