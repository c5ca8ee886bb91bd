import net from 'node:net';
import { TEST_DATABASE_URL, type Teardown, type TestDatabase } from './postgres.js';
import { TEST_RABBIT } from './rabbit.js';

interface Pair {
  client: net.Socket;
  upstream: net.Socket | undefined;
}

/**
 * A TCP proxy a test (or `npm run chaos`) puts between one client and a shared server, to
 * take the server away from that client alone:
 * - cut(): the server is gone (connections reset, new ones refused), as in a restart;
 * - blackhole(): a silent partition: nothing passes either way and nothing is closed, new
 *   connections are accepted and then hang; heal() lets everything flow again, as TCP's
 *   retransmissions would (a side that closed meanwhile is then closed on the other side);
 * - loseReplies(): from now on the server's bytes are dropped on the way back (a request
 *   that arrives and runs, its answer lost), until heal();
 * - loseRequests(): the client's bytes are dropped on the way there (a request that never
 *   arrives), until heal().
 */
export class TcpProxy {
  private server: net.Server | undefined;
  private readonly pairs = new Set<Pair>();
  private silent = false;
  private dropReplies = false;
  private dropRequests = false;
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  /** Starts listening (on the previous port when restarted). */
  async start(): Promise<number> {
    const server = net.createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as net.AddressInfo).port;
    return this.port;
  }

  private accept(client: net.Socket): void {
    const pair: Pair = { client, upstream: undefined };
    this.pairs.add(pair);
    client.on('error', () => undefined);
    client.on('close', () => {
      if (!this.silent) this.drop(pair);
    });
    client.on('data', (chunk) => {
      if (!this.dropRequests) pair.upstream?.write(chunk);
    });
    if (this.silent) client.pause();
    else this.connectUpstream(pair);
  }

  private connectUpstream(pair: Pair): void {
    const upstream = net.connect(this.targetPort, this.targetHost);
    pair.upstream = upstream;
    upstream.on('error', () => undefined);
    upstream.on('close', () => {
      if (!this.silent) this.drop(pair);
    });
    upstream.on('data', (chunk) => {
      if (!this.dropReplies) pair.client.write(chunk);
    });
  }

  private drop(pair: Pair): void {
    pair.client.destroy();
    pair.upstream?.destroy();
    this.pairs.delete(pair);
  }

  /** Refuses new connections and resets every open one. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.silent = false;
    for (const pair of [...this.pairs]) this.drop(pair);
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Nothing passes, nothing closes, new connections hang: a partition that drops packets. */
  blackhole(): void {
    this.silent = true;
    for (const { client, upstream } of this.pairs) {
      client.pause();
      upstream?.pause();
    }
  }

  /** Drops the server's bytes on the way back from now on (see the class comment). */
  loseReplies(): void {
    this.dropReplies = true;
  }

  /** Drops the client's bytes on the way there from now on (see the class comment). */
  loseRequests(): void {
    this.dropRequests = true;
  }

  /** Ends blackhole(), loseReplies() and loseRequests(): held bytes flow, held connections go through, closed sides close. */
  heal(): void {
    this.silent = false;
    this.dropReplies = false;
    this.dropRequests = false;
    for (const pair of [...this.pairs]) {
      if (pair.client.destroyed || pair.upstream?.destroyed) {
        this.drop(pair);
        continue;
      }
      if (!pair.upstream) this.connectUpstream(pair);
      pair.client.resume();
      pair.upstream!.resume();
    }
  }

  /** Open client connections through the proxy. */
  get connections(): number {
    return this.pairs.size;
  }
}

/** A proxy in front of the test database, and the DB_URL that reaches it through the proxy. */
export async function databaseProxy(t: Teardown, database: Pick<TestDatabase, 'name'>): Promise<{ proxy: TcpProxy; DB_URL: string }> {
  const target = new URL(TEST_DATABASE_URL);
  const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
  const port = await proxy.start();
  t.teardown(() => proxy.cut());
  return { proxy, DB_URL: `postgres://127.0.0.1:${port}/${database.name}` };
}

/** A proxy in front of the test broker, and the RABBITMQ_PORT that reaches it. */
export async function rabbitProxy(t: Teardown): Promise<{ proxy: TcpProxy; RABBITMQ_PORT: number }> {
  const proxy = new TcpProxy(TEST_RABBIT.RABBITMQ_HOST, TEST_RABBIT.RABBITMQ_PORT);
  const port = await proxy.start();
  t.teardown(() => proxy.cut());
  return { proxy, RABBITMQ_PORT: port };
}
