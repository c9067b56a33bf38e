"""Verifies one webhook delivery with the Standard Webhooks reference library.

stdin: {"secret": "whsec_...", "headers": {...}, "body": "..."}; prints one JSON line:
{"ok": true, "payload": ...} or {"ok": false, "error": "..."}.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

request = json.loads(sys.stdin.read())
try:
    payload = Webhook(request["secret"]).verify(request["body"], request["headers"])
    print(json.dumps({"ok": True, "payload": payload}))
except WebhookVerificationError as err:
    print(json.dumps({"ok": False, "error": str(err)}))
