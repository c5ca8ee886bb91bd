#!/usr/bin/env node
// `npm start` (after db:migrate): runs every app as its own process, each line prefixed
// with the app's name. Ctrl-C / SIGTERM is passed to all; a second one forces them down.
// If one app exits, the others are stopped too, and the exit code is the first failure's.
import { spawn } from 'node:child_process';

const APPS = [
  { name: 'consumer', entry: 'apps/consumer/src/main.ts', colour: 36 },
  { name: 'relay', entry: 'apps/outbox-relay/src/main.ts', colour: 35 },
  { name: 'admin-api', entry: 'apps/admin-api/src/main.ts', colour: 33 },
];
const tty = process.stdout.isTTY;
const prefix = (app) => (tty ? `\x1b[${app.colour}m[${app.name}]\x1b[0m ` : `[${app.name}] `);

let stopping = 0;
let exitCode = 0;
const children = APPS.map((app) => {
  const child = spawn(process.execPath, ['--conditions=@foodies/source', '--import', 'tsx', app.entry], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const [stream, out] of [
    [child.stdout, process.stdout],
    [child.stderr, process.stderr],
  ]) {
    let rest = '';
    stream.on('data', (chunk) => {
      const lines = (rest + chunk.toString()).split('\n');
      rest = lines.pop();
      for (const line of lines) out.write(`${prefix(app)}${line}\n`);
    });
  }
  child.on('exit', (code, signal) => {
    process.stdout.write(`${prefix(app)}exited (${signal ?? code})\n`);
    if (code && !exitCode) exitCode = code;
    if (!stopping) stop('SIGTERM');
    if (children.every((c) => c.exitCode !== null || c.signalCode !== null)) process.exit(exitCode);
  });
  return child;
});

function stop(signal) {
  stopping++;
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill(stopping > 1 ? 'SIGKILL' : signal);
}
process.on('SIGINT', () => stop('SIGTERM'));
process.on('SIGTERM', () => stop('SIGTERM'));
