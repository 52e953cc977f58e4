-- Mail delivery (the SMTP sender in projectors/src/mailer.rs reads `notifications` as its
-- outbox): account mails (password reset, email verification) have no order; each row records
-- whether and when it was sent, its attempts and last error, and why it will not be sent
-- (`skipped`). `secret` holds the token an account mail's link carries until the mail is sent
-- (the body has `{token}` in its place, so listing notifications never shows it).

ALTER TABLE notifications ALTER COLUMN order_id DROP NOT NULL;
ALTER TABLE notifications
    ADD COLUMN IF NOT EXISTS secret          TEXT,
    ADD COLUMN IF NOT EXISTS sent_at         TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS attempts        INT         NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    ADD COLUMN IF NOT EXISTS last_error      TEXT,
    ADD COLUMN IF NOT EXISTS skipped         TEXT;

-- What was recorded before there was a sender is history, not mail to send now.
UPDATE notifications SET skipped = 'recorded before mail delivery existed'
 WHERE sent_at IS NULL AND skipped IS NULL;

CREATE INDEX IF NOT EXISTS notifications_unsent ON notifications (next_attempt_at, event_id)
    WHERE sent_at IS NULL AND skipped IS NULL;
