-- A message's own URL, rendered from its event when the endpoint's URL
-- holds placeholders (GET, HEAD and DELETE endpoints carry what the
-- receiver needs there); NULL: the endpoint's URL.
ALTER TABLE webhook_messages ADD COLUMN url TEXT;
