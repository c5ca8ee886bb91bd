/** The channel relays LISTEN on; a notification means "new outbox rows may be due". */
export const OUTBOX_CHANNEL = 'outbox_inserted';
