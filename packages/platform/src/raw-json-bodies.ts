import { createRequire } from 'node:module';

/**
 * The one door into rabbitmq-client's internals. rabbitmq-client 5.x JSON.parses every body
 * whose content type is application/json (lib/Channel.js, no option to turn it off). That
 * rounds integers beyond 2^53 (orderId 9007199254740993 would arrive as ...992) and loses the
 * original bytes we must dead-letter. Marking such deliveries with the content encoding
 * "identity" (RFC 9110: no transformation) before the client looks at them makes it hand us
 * the raw Buffer; we parse it ourselves without rounding.
 *
 * It relies on the private Channel.prototype._onHeader(frame) seeing the header frame before
 * the body is decoded. test/raw-json-bodies.test.ts fails if an upgrade renames it or changes
 * what it does with the body, so the workaround cannot break silently.
 */
const require = createRequire(import.meta.url);

interface HeaderFrame {
  fields: { contentType?: string; contentEncoding?: string };
}

/** The private method patched; exported for the test that pins it. */
export function channelPrototype(): { _onHeader?: (frame: HeaderFrame) => void } {
  return (require('rabbitmq-client/lib/Channel.js') as { Channel: { prototype: { _onHeader?: (frame: HeaderFrame) => void } } }).Channel
    .prototype;
}

let installed = false;

/** Idempotent; createRabbit calls it before the first connection. */
export function preserveRawJsonBodies(): void {
  if (installed) return;
  const prototype = channelPrototype();
  const original = prototype._onHeader;
  if (typeof original !== 'function') {
    throw new Error('rabbitmq-client no longer has Channel.prototype._onHeader: the raw JSON body adapter needs updating');
  }
  prototype._onHeader = function (this: unknown, frame: HeaderFrame) {
    if (frame.fields.contentType === 'application/json' && !frame.fields.contentEncoding) {
      frame.fields.contentEncoding = 'identity';
    }
    original.call(this, frame);
  };
  installed = true;
}
