/**
 * Summarises a V8 .cpuprofile: self time by function and by file, top entries first.
 *   node --import tsx scripts/bench/profile-summary.ts <file.cpuprofile> [top=25]
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
const [file, topText] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: profile-summary <file.cpuprofile> [top]\n');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const top = Number(topText ?? 25);
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map<number, number>();
profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
const fn = new Map<string, number>();
const url = new Map<string, number>();
for (const [id, us] of selfUs) {
  const node = byId.get(id)!;
  const where = node.callFrame.url.replace(/^file:\/\/\/work\/main\//, '').replace(/node_modules\/(\.pnpm\/)?/, 'nm/');
  const name = `${node.callFrame.functionName || '(anonymous)'} ${where}:${node.callFrame.lineNumber + 1}`;
  fn.set(name, (fn.get(name) ?? 0) + us);
  const pkg = /nm\/(@[^/]+\/[^/]+|[^/]+)/.exec(where)?.[1] ?? (where || node.callFrame.functionName);
  url.set(pkg, (url.get(pkg) ?? 0) + us);
}
const print = (title: string, map: Map<string, number>) => {
  process.stdout.write(`\n${title} (total ${(total / 1000).toFixed(0)} ms)\n`);
  for (const [k, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top))
    process.stdout.write(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}\n`);
};
print('self time by package/file', url);
print('self time by function', fn);
