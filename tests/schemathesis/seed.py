"""Creates one of each resource in the app, so that schemathesis reaches
real ones and not only 404s, and prints their ids as schemathesis
dictionaries (TOML), which run.sh appends to the configuration.

    python3 seed.py BASE_URL API_KEY
"""

import json
import sys
import urllib.request


def call(method, path, body=None):
    request = urllib.request.Request(
        BASE + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        text = answer.read()
        return json.loads(text) if text else None


BASE, KEY = sys.argv[1], sys.argv[2]

call("PUT", "/v1/users/st-user", {"name": "Schemathesis", "properties": {"plan": "pro"}})
call(
    "PUT",
    "/v1/devices/st-device",
    {"push_token": "token-1", "send_platform": "fcm", "device_platform": "android", "user_id": "st-user"},
)
call("PATCH", "/v1/devices/st-device/properties", {"properties": {"age": 30, "tags": ["a"]}})
draft = call("POST", "/v1/notifications", {"title": "Draft", "body": "b", "external_ids": ["st-device"]})
sent = call(
    "POST",
    "/v1/notifications",
    {"title": "Sent", "body": "b", "conditions": {"key": "age", "operator": "int_gte", "value": 18}, "launch": True},
)
webhook = call("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "event_types": ["device.*"]})
message = call("POST", f"/v1/webhooks/{webhook['id']}/test")
call("PUT", "/v1/push-credentials/webpush", {"subject": "mailto:st@example.com"})
call("POST", "/v1/change-queues", {"name": "st-queue", "from_position": 0})

dictionaries = {
    "external-ids": ["st-device"],
    "user-ids": ["st-user"],
    "notification-ids": [draft["id"], sent["id"]],
    "webhook-ids": [webhook["id"]],
    "message-ids": [message["message_id"]],
    "queue-names": ["default", "st-queue"],
}
for name, values in dictionaries.items():
    print(f"\n[dictionaries.{name}]\nvalues = {json.dumps(values)}")
