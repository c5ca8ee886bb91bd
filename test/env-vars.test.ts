import t from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Type, type TObject } from '@sinclair/typebox';
import { parse, parseAllDocuments } from 'yaml';
import { DatabaseEnv } from '@foodies/platform';
import { ConsumerConfigSchema } from '../apps/consumer/src/config.js';
import { RelayConfigSchema } from '../apps/outbox-relay/src/config.js';
import { AdminConfigSchema } from '../apps/admin-api/src/config.js';

const root = new URL('..', import.meta.url).pathname;
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const readme = read('README.md');

/** What each process reads, by the command that starts it (Dockerfile entry point names). */
const APPS: Record<string, TObject> = {
  consumer: ConsumerConfigSchema,
  relay: RelayConfigSchema,
  'admin-api': AdminConfigSchema,
  migrate: Type.Object(DatabaseEnv),
};

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(join(root, path)).isDirectory()) return entry === 'node_modules' || entry === 'dist' ? [] : sourceFiles(path);
    return /\.(ts|mjs|sh)$/.test(entry) || dir === 'bin' ? [path] : [];
  });
}

function variablesReadByCode(): Set<string> {
  const names = new Set<string>();
  for (const schema of Object.values(APPS)) for (const key of Object.keys(schema.properties)) names.add(key);
  const dirs = [
    'db/src',
    'packages/domain/src',
    'packages/platform/src',
    'packages/gateway/src',
    'packages/testkit/src',
    'apps/consumer/src',
    'apps/outbox-relay/src',
    'apps/admin-api/src',
    'apps/migrate/src',
    'scripts',
    'bin',
  ];
  for (const file of dirs.flatMap(sourceFiles)) {
    const text = read(file);
    for (const m of text.matchAll(/process\.env\.([A-Z][A-Z0-9_]+)/g)) names.add(m[1]!);
    // The OTEL_* variables are read from an env object passed in (tracing.ts), not process.env.
    for (const m of text.matchAll(/\benv\.(OTEL_[A-Z0-9_]+)|'(OTEL_[A-Z0-9_]+)'/g)) names.add((m[1] ?? m[2])!);
    if (file.endsWith('.sh')) for (const m of text.matchAll(/\$\{?([A-Z][A-Z0-9_]+)/g)) names.add(m[1]!);
  }
  return names;
}

/** Env set per app command, from docker-compose.yml and the k8s deployments and job. */
function manifestEnv(): Array<{ where: string; app: string; names: Set<string> }> {
  const out: Array<{ where: string; app: string; names: Set<string> }> = [];
  const compose = parse(read('docker-compose.yml'), { merge: true }) as {
    services: Record<string, { command?: string[]; environment?: Record<string, string> }>;
  };
  for (const [name, service] of Object.entries(compose.services)) {
    const app = service.command?.[0];
    if (app && APPS[app]) out.push({ where: `docker-compose ${name}`, app, names: new Set(Object.keys(service.environment ?? {})) });
  }
  const docs = readdirSync(join(root, 'k8s'), { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) => parseAllDocuments(read(join('k8s', f))).map((d) => d.toJS() as Record<string, unknown>));
  const configMap = docs.find((d) => d.kind === 'ConfigMap') as unknown as { data: Record<string, string> };
  for (const doc of docs.filter((d) => d.kind === 'Deployment' || d.kind === 'Job')) {
    const pod = (
      doc as unknown as {
        spec: {
          template: { spec: { containers: Array<{ image: string; args?: string[]; env?: Array<{ name: string }>; envFrom?: unknown[] }> } };
        };
      }
    ).spec.template.spec;
    for (const container of pod.containers.filter((c) => c.image.startsWith('foodies-payment'))) {
      const names = new Set([...(container.env ?? []).map((e) => e.name), ...(container.envFrom ? Object.keys(configMap.data) : [])]);
      out.push({ where: `k8s ${(doc as unknown as { metadata: { name: string } }).metadata.name}`, app: container.args![0]!, names });
    }
  }
  return out;
}

t.test('every environment variable the code reads is documented in the README', async (t) => {
  const names = variablesReadByCode();
  t.ok(names.size > 40);
  for (const name of [...names].sort()) t.ok(readme.includes(`\`${name}\``), `${name} is documented`);
});

t.test('every variable an app reads is set in its manifests or has a default', async (t) => {
  const sets = manifestEnv();
  t.same([...new Set(sets.map((s) => s.app))].sort(), ['admin-api', 'consumer', 'migrate', 'relay']);
  for (const { where, app, names } of sets) {
    const schema = APPS[app]!;
    for (const [name, property] of Object.entries(schema.properties)) {
      const defaulted = (property as { default?: unknown }).default !== undefined || !schema.required?.includes(name);
      t.ok(names.has(name) || defaulted, `${where}: ${name} set or defaulted`);
    }
  }
});

t.test('manifests set no variable that no app reads (typos fail here)', async (t) => {
  // Shared settings (ConfigMap, compose anchors) reach every app; each must be read by one.
  const known = new Set(Object.values(APPS).flatMap((schema) => Object.keys(schema.properties)));
  for (const { where, names } of manifestEnv()) {
    for (const name of names) t.ok(known.has(name), `${where}: ${name} is read by an app`);
  }
});
