"""A client generated from weaved's own /api/openapi.json by openapi-python-client, used as a
user of the SDK would: it builds, imports, and drives every JSON operation of the document
against the real daemon; each real answer is checked against the document's schema for it,
and every example of the document against its schema.

Usage: openapi_client.py BASE_URL TOKEN WORKDIR. Prints one JSON line: what was checked."""

import importlib
import json
import os
import subprocess
import sys
import urllib.request

import jsonschema

base, token, work = sys.argv[1], sys.argv[2], sys.argv[3]

with urllib.request.urlopen(base + "/api/openapi.json") as resp:
    doc = json.load(resp)
doc_path = os.path.join(work, "openapi.json")
with open(doc_path, "w") as f:
    json.dump(doc, f)

# Generate the package `weave_client` (ruff, its formatter, is found next to this Python).
bindir = os.path.dirname(sys.executable)
env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
gen = subprocess.run(
    [os.path.join(bindir, "openapi-python-client"), "generate", "--path", doc_path,
     "--output-path", os.path.join(work, "weave_client"), "--meta", "none"],
    env=env, capture_output=True, text=True)
if gen.returncode != 0 or "Warning" in gen.stdout + gen.stderr:
    sys.exit(f"generation failed or warned:\n{gen.stdout}\n{gen.stderr}")
sys.path.insert(0, work)
client_mod = importlib.import_module("weave_client")
api = "weave_client.api.default."
models = importlib.import_module("weave_client.models")
client = client_mod.AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)

schemas = doc["components"]["schemas"]


def validator(name):
    return jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": doc["components"]})


for name, schema in schemas.items():
    for example in schema.get("examples", []):
        validator(name).validate(example)

# operationId -> (status, schema name) of its JSON success answer.
ops = {}
for path, methods in doc["paths"].items():
    for method, op in methods.items():
        for status, answer in op["responses"].items():
            media = answer.get("content", {}).get("application/json")
            if status != "default" and media:
                ops[op["operationId"]] = (int(status), media["schema"]["$ref"].rsplit("/", 1)[1])

called = set()


def snake(op_id):
    return "".join("_" + c.lower() if c.isupper() else c for c in op_id)


def call(op_id, *args, **kwargs):
    """Calls the generated function; checks the status and the real body against the schema."""
    fn = importlib.import_module(api + snake(op_id)).sync_detailed
    resp = fn(*args, client=client, **kwargs)
    status, schema = ops[op_id]
    body = json.loads(resp.content)
    assert resp.status_code == status, (op_id, resp.status_code, body)
    validator(schema).validate(body)
    assert resp.parsed is not None and type(resp.parsed).__name__ != "Problem", (op_id, resp.parsed)
    called.add(op_id)
    return resp.parsed, body


m = models
call("getHealth")
call("getOpenapi")
session, _ = call("createSession", body=m.CreateSession(name="generated"))
sid = session.id
call("listSessions", include_closed=True)
call("registerAgent", sid, body=m.RegisterAgent(name="Pat", kind=m.RegisterAgentKind.HUMAN, id="pat"))
call("registerAgent", sid, body=m.RegisterAgent(name="Bot", kind=m.RegisterAgentKind.SDK, id="bot"))
call("getSession", sid)
call("listAgents", sid)
call("orderAgents", sid, body=m.OrderAgents(ids=["bot", "pat"]))
sent, _ = call("sendMessage", sid, body=m.SendMessage(**{"from_": "pat", "text": "please review",
                                                         "agent_ids": ["bot"]}))
mid = sent.ids[0]
inbox, raw = call("getInbox", sid, "bot")
assert [i.id for i in inbox.messages] == [mid], raw
call("markRead", sid, "bot", body=m.MarkRead(ids=[mid]))
waiting, raw = call("getInbox", sid, "bot", waiting=True)
assert waiting.messages[0].state.value == "read", raw
call("getReceipts", sid, mid)
call("ackDeliveries", sid, "bot", body=m.AckDeliveries(ids=["not-a-delivery"]))
call("getHistory", sid, limit=50)
found, raw = call("searchEvents", sid, text="review")
assert len(found.records) == 1, raw

# A relay step to the person, approved through its result: the relay proceeds.
step = m.SubmitRelay.from_dict({"from": "bot", "relay_id": "r1", "actions": [
    {"type": "message", "dst": "pat", "text": "may I merge?", "expects_reply": True}]})
accepted, raw = call("submitRelay", sid, body=step)
assert accepted.status.value == "accepted", raw
call("listRelays", sid)
call("listTasks", sid)
todo, raw = call("getInbox", sid, "pat", waiting=True)
item = next(i for i in todo.messages if i.envelope.type_ == "action.submit")
group = item.envelope.payload["group_id"]
call("sendActionResult", sid, item.id, body=m.ActionResult.from_dict({
    "from": "pat", "to": "bot", "status": "completed", "detail": "approved",
    "group_id": group, "action_index": 0}))
after, raw = call("getInbox", sid, "pat", waiting=True)
assert all(i.id != item.id for i in after.messages), raw
call("finishRelay", sid, "r1", body=m.FinishRelay(summary="merged"))
call("submitRelay", sid, body=m.SubmitRelay.from_dict({"from": "bot", "relay_id": "r2", "actions": [
    {"type": "message", "dst": "pat", "text": "and deploy?", "expects_reply": True}]}))
call("cancelRelay", sid, "r2", body=m.CancelRelay(reason="not today"))
call("renameAgent", sid, "bot", body=m.RenameAgent(name="Reviewer"))
call("removeAgent", sid, "bot")
call("closeSession", sid)

# A problem is a problem, in the documented shape.
from weave_client.api.default import get_session  # noqa: E402
client_lenient = client_mod.AuthenticatedClient(base_url=base, token=token)
missing = get_session.sync_detailed("no-such-session", client=client_lenient)
assert missing.status_code == 404, missing.status_code
validator("Problem").validate(json.loads(missing.content))

left = sorted(set(ops) - called)
assert not left, f"operations never called: {left}"
print(json.dumps({"operations": len(called), "schemas": len(schemas)}))
