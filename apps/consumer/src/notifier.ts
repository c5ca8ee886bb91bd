import { notifyOutbox, type Db } from '@foodies/db';
import type { Logger } from '@foodies/platform';

/**
 * Wakes the relays after answers commit, coalesced: one NOTIFY in flight at a time, and
 * every poke that arrives meanwhile is covered by exactly one more. Under load that is a
 * handful of notifications per second instead of one per payment, and none of them holds
 * the NOTIFY lock through a writing commit. A failed NOTIFY is only logged: the relay's
 * safety poll publishes the rows anyway.
 */
export class OutboxNotifier {
  private inFlight: Promise<void> | undefined;
  private again = false;

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
  ) {}

  poke(): void {
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = this.run().finally(() => {
      this.inFlight = undefined;
    });
  }

  /** Resolves when no notification is pending (shutdown). */
  async idle(): Promise<void> {
    while (this.inFlight) await this.inFlight;
  }

  private async run(): Promise<void> {
    do {
      this.again = false;
      try {
        await notifyOutbox(this.db);
      } catch (err) {
        this.logger.warn({ err }, 'could not notify the relay; its safety poll will publish the rows');
      }
    } while (this.again);
  }
}
