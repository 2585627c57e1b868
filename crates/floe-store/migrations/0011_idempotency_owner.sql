-- Who holds a claimed idempotency key (a server instance id) and when it last renewed the claim
-- (Unix ms, by the store's clock): a claim not renewed for the takeover timeout may be taken over.
-- Claims made before this migration have no owner and count as abandoned.
ALTER TABLE idempotency_keys ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE idempotency_keys ADD COLUMN renewed_at BIGINT NOT NULL DEFAULT 0;
