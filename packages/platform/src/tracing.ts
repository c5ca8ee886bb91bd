/**
 * OpenTelemetry traces, behind the standard OTEL_* variables. Off unless
 * OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_TRACES_EXPORTER
 * (otlp or console) is set, and OTEL_SDK_DISABLED is not `true`. Off, nothing is registered
 * and `inSpan` calls its function directly: no span objects, no context switches.
 *
 * The SDK is loaded only when tracing is on (startTracing), so a process without OTEL_*
 * never imports it. Span attributes follow the messaging and database semantic conventions
 * and carry identifiers only: never card data, holder names or amounts' owners.
 */
import {
  context,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type SpanContext,
  type TextMapGetter,
} from '@opentelemetry/api';
import type { SpanExporter } from '@opentelemetry/sdk-trace';
import { maskCardNumbers } from '@foodies/domain';
import { loadConfigOrExit } from './config.js';
import { ConfigError } from './errors.js';

export { SpanKind, type Attributes, type Span };

const TRACER = 'foodies-payment';
let enabled = false;

export interface TracingOptions {
  /** `service.name` unless OTEL_SERVICE_NAME says otherwise. */
  serviceName: string;
  env?: NodeJS.ProcessEnv;
  /** Tests: export here, span by span (SimpleSpanProcessor), instead of what OTEL_* says. */
  exporter?: SpanExporter;
}

export interface Tracing {
  enabled: boolean;
  /** Exports what is buffered and stops; idempotent. */
  shutdown(): Promise<void>;
}

/** Which exporter OTEL_* asks for, or undefined when tracing is off. */
export function tracesExporterFromEnv(env: NodeJS.ProcessEnv): 'otlp' | 'console' | undefined {
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return undefined;
  const named = (env.OTEL_TRACES_EXPORTER ?? '').trim().toLowerCase();
  if (named === 'none') return undefined;
  if (named === 'console') return 'console';
  if (named === 'otlp') return 'otlp';
  if (named) throw new ConfigError('OTEL_TRACES_EXPORTER', `must be otlp, console or none; got '${env.OTEL_TRACES_EXPORTER}'`);
  return env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ? 'otlp' : undefined;
}

/** The standard OTEL_BSP_* variables (SDK 3 no longer reads them itself); unset or invalid: the SDK's defaults. */
export function batchOptionsFromEnv(env: NodeJS.ProcessEnv): {
  scheduledDelayMillis?: number;
  maxQueueSize?: number;
  maxExportBatchSize?: number;
  exportTimeoutMillis?: number;
} {
  const read = (name: string) => {
    const value = Number(env[name]);
    return env[name]?.trim() && Number.isInteger(value) && value > 0 ? value : undefined;
  };
  const options = {
    scheduledDelayMillis: read('OTEL_BSP_SCHEDULE_DELAY'),
    maxQueueSize: read('OTEL_BSP_MAX_QUEUE_SIZE'),
    maxExportBatchSize: read('OTEL_BSP_MAX_EXPORT_BATCH_SIZE'),
    exportTimeoutMillis: read('OTEL_BSP_EXPORT_TIMEOUT'),
  };
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
}

/**
 * Registers the tracer provider (batching exporter, W3C trace-context propagator,
 * AsyncLocalStorage context) when OTEL_* turn tracing on; a no-op otherwise. Call it first
 * in main(), and `shutdown()` last, so the final spans are exported.
 */
export async function startTracing(options: TracingOptions): Promise<Tracing> {
  const env = options.env ?? process.env;
  const kind = options.exporter ? 'test' : tracesExporterFromEnv(env);
  if (!kind) return { enabled: false, shutdown: async () => undefined };
  const [{ TracerProvider, BatchSpanProcessor, SimpleSpanProcessor, ConsoleSpanExporter }, resources, core, hooks] = await Promise.all([
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/core'),
    import('@opentelemetry/context-async-hooks'),
  ]);
  let processor;
  if (options.exporter) processor = new SimpleSpanProcessor({ exporter: options.exporter });
  else if (kind === 'console') processor = new SimpleSpanProcessor({ exporter: new ConsoleSpanExporter() });
  else {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    processor = new BatchSpanProcessor({ exporter: new OTLPTraceExporter(), ...batchOptionsFromEnv(env) });
  }
  const resource = resources
    .resourceFromAttributes({ 'service.name': options.serviceName })
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));
  const provider = new TracerProvider({ resource, spanProcessors: [processor] });
  context.setGlobalContextManager(new hooks.AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new core.W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  enabled = true;
  let stopped: Promise<void> | undefined;
  return {
    enabled: true,
    shutdown: () =>
      (stopped ??= (async () => {
        await provider.shutdown();
        enabled = false;
        trace.disable();
        propagation.disable();
        context.disable();
      })()),
  };
}

/** startTracing for a process's main(): a bad OTEL_TRACES_EXPORTER stops it with one line, like any bad variable. */
export function startProcessTracing(serviceName: string): Promise<Tracing> {
  loadConfigOrExit(serviceName, () => tracesExporterFromEnv(process.env));
  return startTracing({ serviceName });
}

export function tracingEnabled(): boolean {
  return enabled;
}

export interface SpanOptions {
  kind?: SpanKind;
  attributes?: Attributes;
  /** The parent, if not the active span (an incoming message's, a stored row's). */
  parent?: Context;
  links?: Link[];
}

/**
 * Runs `fn` inside a span that ends when it settles (an error is recorded and sets the
 * status); with tracing off, just runs `fn`. The span is the active one inside `fn`, so the
 * spans `fn` opens are its children.
 */
export async function inSpan<T>(name: string, options: SpanOptions, fn: (span: Span | undefined) => Promise<T>): Promise<T> {
  if (!enabled) return fn(undefined);
  const tracer = trace.getTracer(TRACER);
  const parent = options.parent ?? context.active();
  return tracer.startActiveSpan(
    name,
    { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes, links: options.links },
    parent,
    async (span) => {
      try {
        return await fn(span);
      } catch (err) {
        failed(span, err);
        throw err;
      } finally {
        span.end();
      }
    },
  );
}

/** inSpan for synchronous work (decoding a body, say). */
export function inSpanSync<T>(name: string, options: SpanOptions, fn: (span: Span | undefined) => T): T {
  if (!enabled) return fn(undefined);
  const parent = options.parent ?? context.active();
  return trace
    .getTracer(TRACER)
    .startActiveSpan(
      name,
      { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes, links: options.links },
      parent,
      (span) => {
        try {
          return fn(span);
        } catch (err) {
          failed(span, err);
          throw err;
        } finally {
          span.end();
        }
      },
    );
}

function failed(span: Span, err: unknown): void {
  span.recordException(err instanceof Error ? { name: err.name, message: maskCardNumbers(err.message) } : maskCardNumbers(String(err)));
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.name : 'error' });
}

/** Attributes of a span of one PostgreSQL statement (database semantic conventions). */
export function dbSpan(operation: string, collection: string): SpanOptions {
  return {
    kind: SpanKind.CLIENT,
    attributes: { 'db.system.name': 'postgresql', 'db.operation.name': operation, 'db.collection.name': collection },
  };
}

/**
 * A span that the caller ends (a request's, opened in one hook and ended in another), and
 * the context to run its work in; undefined when tracing is off.
 */
export function startSpan(name: string, options: SpanOptions): { span: Span; context: Context } | undefined {
  if (!enabled) return undefined;
  const parent = options.parent ?? context.active();
  const span = trace
    .getTracer(TRACER)
    .startSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes, links: options.links }, parent);
  return { span, context: trace.setSpan(parent, span) };
}

/** Runs `fn` with `ctx` active: the spans it opens, and its async work's, are children of ctx's span. */
export function withContext<T>(ctx: Context, fn: () => T): T {
  return context.with(ctx, fn);
}

/** Ends a span with an error status (a 5xx answer, say). */
export function endSpan(span: Span, error?: string): void {
  if (error) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
  span.end();
}

/** An event on the active span (a retry, say); nothing when tracing is off. */
export function spanEvent(name: string, attributes?: Attributes): void {
  if (enabled) trace.getActiveSpan()?.addEvent(name, attributes);
}

/** Attributes on the active span; nothing when tracing is off. */
export function spanAttributes(attributes: Attributes): void {
  if (enabled) trace.getActiveSpan()?.setAttributes(attributes);
}

const headerGetter: TextMapGetter<Record<string, unknown> | undefined> = {
  keys: (carrier) => Object.keys(carrier ?? {}),
  get: (carrier, key) => {
    const value = carrier?.[key];
    return typeof value === 'string' ? value : Buffer.isBuffer(value) ? value.toString('utf8') : undefined;
  },
};

/** The context an incoming message's W3C `traceparent`/`tracestate` headers carry (or the active one). */
export function contextFromHeaders(headers: Record<string, unknown> | undefined): Context {
  return enabled ? propagation.extract(context.active(), headers, headerGetter) : context.active();
}

/** The W3C `traceparent` (and `tracestate`) of the active span, to send with a message; empty when off. */
export function traceHeaders(): Record<string, string> {
  if (!enabled) return {};
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier;
}

/** The active span's `traceparent`, to store with a row written now; null when off or outside a span. */
export function currentTraceparent(): string | null {
  return traceHeaders().traceparent ?? null;
}

/** The span context a stored `traceparent` names, or undefined if it is absent or malformed. */
export function spanContextFromTraceparent(traceparent: string | null | undefined): SpanContext | undefined {
  if (!enabled || !traceparent) return undefined;
  const span = trace.getSpanContext(propagation.extract(context.active(), { traceparent }, headerGetter));
  return span && trace.isSpanContextValid(span) ? span : undefined;
}

/** A context whose parent is `spanContext` (a stored row's), for a span that continues its trace. */
export function contextOf(spanContext: SpanContext): Context {
  return trace.setSpanContext(context.active(), spanContext);
}
