-- attempts counts every failed publish, broker outages included; parking must count only the
-- failures of the row itself (returned as unroutable, nacked), or a long broker outage would
-- use up a row's budget and park it at its first real failure afterwards.
ALTER TABLE outbox ADD COLUMN row_failures INT NOT NULL DEFAULT 0;
