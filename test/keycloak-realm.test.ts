import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join, normalize } from 'node:path';
import { parse } from 'yaml';
import { loadAdminConfig } from '../apps/admin-api/src/config.js';

/**
 * The local Keycloak (docker-compose.yml's keycloak service and the realm it imports) against
 * what the admin API expects of a token: its issuer, where its keys are, and the realm role.
 * Docker cannot run on the build machines, so this is checked by parsing, not by a token.
 */

const root = new URL('..', import.meta.url).pathname;
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const REALM_FILE = 'deploy/keycloak/foodies-keycloak-realm.json';
/** The development passwords the README gives. */
const PASSWORDS = { 'payment-admin': 'payment-admin-dev', 'payment-viewer': 'payment-viewer-dev' };

type Credential = { type?: string; value?: string; temporary?: boolean };
type User = {
  username: string;
  enabled?: boolean;
  email?: string;
  emailVerified?: boolean;
  firstName?: string;
  lastName?: string;
  credentials?: Credential[];
  realmRoles?: string[];
  groups?: string[];
  requiredActions?: string[];
};
type Client = {
  clientId: string;
  enabled?: boolean;
  protocol?: string;
  publicClient?: boolean;
  directAccessGrantsEnabled?: boolean;
  standardFlowEnabled?: boolean;
  fullScopeAllowed?: boolean;
  defaultClientScopes?: string[];
  protocolMappers?: unknown[];
};
type Realm = {
  realm: string;
  enabled?: boolean;
  roles?: { realm?: Array<{ name: string; composite?: boolean }> };
  defaultRoles?: string[];
  defaultRole?: { composites?: { realm?: string[] } };
  clientScopes?: unknown[];
  groups?: unknown[];
  clients?: Client[];
  users?: User[];
};
type Service = {
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: Array<string | { type?: string; source?: string; target?: string; read_only?: boolean }>;
  depends_on?: Record<string, { condition?: string }>;
  healthcheck?: { test?: string[] };
};

const realm = JSON.parse(read(REALM_FILE)) as Realm;
const { services } = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service> };
const keycloakName = Object.keys(services).find((name) => services[name]!.image?.startsWith('quay.io/keycloak/keycloak:'));
const keycloak = services[keycloakName ?? ''] ?? {};
const adminApi = services['admin-api'] ?? {};
const adminEnv = adminApi.environment ?? {};
const kcEnv = keycloak.environment ?? {};
/** 'host:container' of the port Keycloak serves HTTP on (8080 in the image). */
const httpPort = (keycloak.ports ?? []).map((p) => String(p).split(':')).find((p) => p.at(-1) === '8080');
const user = (name: string) => realm.users?.find((u) => u.username === name);

t.test('the realm file names the realm and enables it', async (t) => {
  t.equal(realm.realm, 'foodies-keycloak');
  t.equal(realm.enabled, true);
});

t.test('compose runs Keycloak 26 importing the realm file', async (t) => {
  t.equal(keycloakName, 'keycloak', 'a service named keycloak runs quay.io/keycloak/keycloak');
  t.match(keycloak.image, /^quay\.io\/keycloak\/keycloak:26(\.\d+){0,2}$/, 'a 26.x tag');
  t.same(keycloak.command, ['start-dev', '--import-realm']);
  const mounts = (keycloak.volumes ?? []).map((v) => {
    if (typeof v !== 'string') return { source: v.source ?? '', target: v.target ?? '', readOnly: v.read_only === true };
    const [source = '', target = '', mode = ''] = v.split(':');
    return { source, target, readOnly: mode.split(',').includes('ro') };
  });
  const mount = mounts.find((m) => normalize(m.source) === normalize(`./${REALM_FILE}`));
  t.ok(mount, `${REALM_FILE} is mounted`);
  t.ok(existsSync(join(root, REALM_FILE)), `${REALM_FILE} exists`);
  // --import-realm reads the *.json files directly in this directory.
  t.match(mount?.target, /^\/opt\/keycloak\/data\/import\/[^/]+\.json$/, 'into /opt/keycloak/data/import');
  t.equal(mount?.readOnly, true, 'read-only');
  t.ok(httpPort, 'port 8080 is published');
  t.equal(kcEnv.KC_HOSTNAME_BACKCHANNEL_DYNAMIC, 'true');
  // Backchannel-dynamic needs the hostname as a full URL; the host port is the published one.
  const hostname = new URL(kcEnv.KC_HOSTNAME ?? 'missing:');
  t.match(hostname.protocol, /^https?:$/, 'KC_HOSTNAME is a full URL');
  t.equal(hostname.port, httpPort?.[0], 'KC_HOSTNAME names the published port');
  t.equal(kcEnv.KC_HEALTH_ENABLED, 'true', 'health endpoints on the management port');
  const check = (keycloak.healthcheck?.test ?? []).join(' ');
  t.match(check, /\/dev\/tcp\/127\.0\.0\.1\/9000/, 'healthcheck asks the management port');
  t.match(check, /GET \/health\/ready /, 'healthcheck asks readiness');
});

t.test('the admin API in compose expects the issuer and keys of this Keycloak', async (t) => {
  const config = loadAdminConfig(adminEnv);
  t.equal(config.AUTH_ISSUER, `${kcEnv.KC_HOSTNAME}/realms/${realm.realm}`, 'iss as KC_HOSTNAME makes it');
  t.equal(
    config.AUTH_JWKS_URL,
    `http://${keycloakName}:${httpPort?.at(-1)}/realms/${realm.realm}/protocol/openid-connect/certs`,
    'keys fetched from the keycloak service on its container port',
  );
  t.equal(config.AUTH_AUDIENCE, undefined, 'no audience is required');
  t.match(adminApi.depends_on, {
    keycloak: { condition: 'service_healthy' },
    migrate: { condition: 'service_completed_successfully' },
    rabbitmq: { condition: 'service_healthy' },
  });
});

t.test('with only AUTH_ISSUER set, the JWKS URL is the realm certs endpoint', async (t) => {
  const issuer = `${kcEnv.KC_HOSTNAME}/realms/${realm.realm}`;
  t.equal(loadAdminConfig({ AUTH_ISSUER: issuer }).AUTH_JWKS_URL, `${issuer}/protocol/openid-connect/certs`);
  // npm start's defaults point at the same Keycloak.
  const defaults = loadAdminConfig({});
  t.equal(defaults.AUTH_ISSUER, issuer, 'the default AUTH_ISSUER is this realm');
  t.equal(defaults.AUTH_JWKS_URL, `${issuer}/protocol/openid-connect/certs`);
});

t.test('the admin role exists; the admin user holds it and the viewer does not', async (t) => {
  const defaults = loadAdminConfig({});
  const roles = new Set([defaults.AUTH_ADMIN_ROLE, defaults.AUTH_REFUND_ROLE, loadAdminConfig(adminEnv).AUTH_ADMIN_ROLE]);
  const realmRoles = (realm.roles?.realm ?? []).map((r) => r.name);
  for (const role of roles) {
    t.ok(realmRoles.includes(role), `realm role '${role}' exists`);
    t.ok(user('payment-admin')?.realmRoles?.includes(role), `payment-admin holds '${role}'`);
    t.notOk(user('payment-viewer')?.realmRoles?.includes(role), `payment-viewer does not hold '${role}'`);
    // Nor through the default role, a composite or a group.
    t.notOk(realm.defaultRoles?.includes(role), `'${role}' is not a default role`);
    t.notOk(realm.defaultRole?.composites?.realm?.includes(role), `'${role}' is not in the default role`);
  }
  t.notOk(
    realm.roles?.realm?.some((r) => r.composite),
    'no composite realm roles',
  );
  t.same(user('payment-viewer')?.groups ?? [], [], 'payment-viewer is in no group');
});

t.test('both users can sign in with the documented development passwords', async (t) => {
  for (const [name, password] of Object.entries(PASSWORDS)) {
    const u = user(name);
    t.ok(u, `${name} exists`);
    t.equal(u?.enabled, true, `${name} is enabled`);
    t.same(u?.credentials, [{ type: 'password', value: password, temporary: false }], `${name}: password ${password}, not temporary`);
    // Keycloak 26's default user profile requires these; missing ones block the password grant.
    t.equal(u?.emailVerified, true, `${name}: email verified`);
    t.match(u, { email: /@/, firstName: /\S/, lastName: /\S/ }, `${name}: profile complete`);
    t.same(u?.requiredActions ?? [], [], `${name}: no required actions`);
  }
});

t.test('the client allows the password grant and puts realm roles in realm_access.roles', async (t) => {
  const client = realm.clients?.find((c) => c.clientId === 'payment-admin-cli');
  t.ok(client, 'client payment-admin-cli exists');
  t.equal(client?.protocol, 'openid-connect');
  t.equal(client?.publicClient, true, 'public');
  t.equal(client?.directAccessGrantsEnabled, true, 'direct access grants');
  t.equal(client?.standardFlowEnabled, false, 'no browser flow');
  t.not(client?.enabled, false, 'enabled');
  // Without clientScopes in the file Keycloak creates its defaults, among them `roles`
  // (realm_access.roles) and `basic` (sub, which the admin API requires), and gives them to
  // every client that does not list its own.
  t.equal(realm.clientScopes, undefined, 'the realm keeps Keycloak default client scopes');
  const scopes = client?.defaultClientScopes;
  t.ok(scopes === undefined || (scopes.includes('roles') && scopes.includes('basic')), 'the client has the roles and basic scopes');
  t.equal(client?.protocolMappers, undefined, 'no client mappers replace the defaults');
  t.not(client?.fullScopeAllowed, false, 'full scope: every realm role of the user is in the token');
});
