-- The outbox insert trigger NOTIFYed inside the writing transaction. NOTIFY takes a
-- database-wide lock that is held through the commit's WAL flush, so every consumer commit
-- was serialised behind it. Writers now NOTIFY after their commit instead (coalesced by the
-- consumer: one notification covers every commit before it); NOTIFY stays a hint, the
-- relay's claim query and safety poll remain the truth.
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION notify_outbox();
