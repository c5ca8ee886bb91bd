import type { FastifyInstance, FastifyRequest } from 'fastify';
import { contextFromHeaders, endSpan, SpanKind, startSpan, tracingEnabled, withContext, type Span } from '@foodies/platform';

/**
 * A SERVER span per request when tracing is on (HTTP semantic conventions), its parent the
 * caller's `traceparent` if it sent one; the route's work (a refund's gateway call, its
 * outbox row) runs inside it. The span carries the method, route, path and status: never a
 * header, a query string or a body (tokens, card data).
 */
export function traceRequests(app: FastifyInstance): void {
  if (!tracingEnabled()) return;
  const spans = new WeakMap<FastifyRequest, Span>();
  app.addHook('onRequest', (req, _reply, done) => {
    const route = req.routeOptions.url;
    const started = startSpan(`${req.method} ${route ?? 'unmatched route'}`, {
      kind: SpanKind.SERVER,
      parent: contextFromHeaders(req.headers),
      attributes: {
        'http.request.method': req.method,
        ...(route ? { 'http.route': route } : {}),
        'url.path': req.url.split('?')[0]!,
        'url.scheme': req.protocol,
      },
    });
    if (!started) return done();
    spans.set(req, started.span);
    withContext(started.context, done);
  });
  app.addHook('onResponse', (req, reply, done) => {
    const span = spans.get(req);
    if (span) {
      span.setAttribute('http.response.status_code', reply.statusCode);
      endSpan(span, reply.statusCode >= 500 ? String(reply.statusCode) : undefined);
    }
    done();
  });
}
