"""A headless agent's command for the tests: reads the message on stdin and answers on stdout
with what it was given and its WEAVE_* context. `slow` in the text makes it take a while
(long enough for `agents` to show it busy); `fail` makes it exit 3 with an error on stderr."""

import json
import os
import sys
import time

text = sys.stdin.read()
if "slow" in text:
    time.sleep(float(os.environ.get("WORKER_SLOW_S", "2")))
if "fail" in text:
    print("warming up", file=sys.stderr)
    print("the build broke at step 4", file=sys.stderr)
    sys.exit(3)
context = {k: os.environ.get(k, "") for k in
           ["WEAVE_SESSION", "WEAVE_AGENT", "WEAVE_FROM", "WEAVE_MESSAGE_ID", "WEAVE_CONTEXT_ID", "WEAVE_RELAY_ID"]}
print("done: " + text.upper())
print(json.dumps(context))
