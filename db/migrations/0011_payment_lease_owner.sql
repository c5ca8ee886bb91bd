-- Who holds an in-flight payment's lease: the delivery (or recovery sweep) that claimed or
-- took it over. Its own retry may take the payment back at once, without waiting for the
-- lease to expire, when it cannot know whether its last statement committed (the connection
-- died under it); anybody else still waits for lease_expires_at.
ALTER TABLE payments ADD COLUMN lease_owner VARCHAR(64);
