#!/usr/bin/env python3
"""Verify a Herald NDJSON export of one app's log (Python standard library only).

    python3 verify_export.py export.ndjson [--previous HEX]

Recomputes every event's hash from its canonical form (docs/integrity.md):

    hash = SHA-256(previous_hash_bytes || canonical(event))

starting from 32 zero bytes (the app's first event) or from --previous (the
hash of the event before the export's first line, for a partial export).
Prints `ok <events> <head_position> <head_hash>` and exits 0, or prints the
first position where the chain breaks and exits 1.
"""

import hashlib
import json
import sys

FIELDS = (
    "app_id", "data", "event_id", "event_type", "metadata", "position",
    "recorded_at", "schema_version", "stream", "stream_version",
)


def canonical(event):
    body = {field: event[field] for field in FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    previous = bytes(32)
    if "--previous" in argv:
        previous = bytes.fromhex(argv[argv.index("--previous") + 1])
    events = 0
    last_position = 0
    with open(argv[1], encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                position = event["position"]
                stored = event["hash"]
                link = hashlib.sha256(previous + canonical(event)).digest()
            except (ValueError, KeyError, TypeError) as e:
                print(f"broken at line {number}: not an event envelope ({e})")
                return 1
            if position <= last_position:
                print(f"broken at position {position}: does not follow position {last_position}")
                return 1
            if link.hex() != stored:
                print(f"broken at position {position}: the stored hash does not match "
                      "(this event, or the link to the previous one, was altered)")
                return 1
            previous = link
            last_position = position
            events += 1
    print(f"ok {events} {last_position} {previous.hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
