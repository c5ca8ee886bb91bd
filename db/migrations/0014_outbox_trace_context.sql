-- The W3C traceparent of the span that wrote an outbox row (NULL when tracing is off), so
-- the relay's publish span, however much later it runs, continues the order's trace and
-- links to the write, and the published answer carries a traceparent. A traceparent is 55
-- characters; the bound keeps a bad writer from storing anything large. Adding a nullable
-- column without a default is a catalog change only: no table rewrite, no long lock.
ALTER TABLE outbox ADD COLUMN trace_context TEXT
  CONSTRAINT outbox_trace_context_length CHECK (length(trace_context) <= 512);
