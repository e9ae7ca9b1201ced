-- Retention (HERALD_WEBHOOK_RETENTION_DAYS): finished messages are deleted
-- some time after their last change, then the attempts and callback URLs
-- left without a message; these find them without a scan.
CREATE INDEX webhook_messages_finished ON webhook_messages (updated_at) WHERE status IN ('succeeded', 'failed');
CREATE INDEX webhook_callbacks_created ON webhook_callbacks (created_at);
