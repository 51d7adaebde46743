"""Two stock MCP agents hold a conversation through `weavectl mcp`, driven by the official
Python MCP SDK: join, agents, send, inbox with wait, reply, receipts. Run by tests/mcp.rs with
WEAVECTL, WEAVE_HOME and SESSION in the environment; prints one JSON line of what it saw."""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

WEAVECTL = os.environ["WEAVECTL"]
SESSION = os.environ["SESSION"]


def params(*args, env=None):
    return StdioServerParameters(
        command=WEAVECTL,
        args=["mcp", *args],
        env={"WEAVE_HOME": os.environ["WEAVE_HOME"], **(env or {})},
    )


async def call(session, tool, **arguments):
    result = await session.call_tool(tool, arguments)
    data = result.structured_content
    if data is None:
        data = json.loads(result.content[0].text)
    return {"error": bool(result.is_error), **data}


async def main():
    # Alice joins by flags; Bob by environment variables; both see the same session.
    async with stdio_client(params("--session", SESSION, "--name", "Alice")) as (ar, aw), \
            stdio_client(params(env={"WEAVE_SESSION": SESSION, "WEAVE_AGENT": "Bob"})) as (br, bw):
        async with ClientSession(ar, aw) as alice, ClientSession(br, bw) as bob:
            await alice.initialize()
            await bob.initialize()
            tools = sorted(t.name for t in (await alice.list_tools()).tools)
            schemas = {t.name: t.input_schema for t in (await alice.list_tools()).tools}
            me = await call(alice, "whoami")
            bob_me = await call(bob, "whoami")
            agents = await call(alice, "agents")
            # Bob waits for work while Alice sends it: the long poll returns at the message.
            waiting = asyncio.create_task(call(bob, "inbox", wait_s=20))
            await asyncio.sleep(0.5)
            sent = await call(alice, "send", to=["Bob"], text="please review PR 7")
            got = await waiting
            message_id = sent["sent"][0]["message_id"]
            again = await call(bob, "inbox")
            replied = await call(bob, "reply", message_id=got["messages"][0]["id"], text="LGTM, merged")
            answer = await call(alice, "inbox", wait_s=10)
            # Alice follows up on Bob's answer: in her own conversation that is a follow-up.
            followed = await call(alice, "reply", message_id=answer["messages"][0]["id"], text="thanks, closing")
            unknown = await call(alice, "send", to=["Nobody"], text="hello?")
            bad_reply = await call(bob, "reply", message_id="no-such-message", text="x")
            found = await call(alice, "search", text="review")
            receipts = await call(alice, "receipts", message_ids=[message_id])
            history = await call(bob, "history", limit=50)
            # Two models handing each other new work forever: the loop guard stops them.
            stopped = None
            for i in range(10):
                who, to = (alice, "Bob") if i % 2 == 0 else (bob, "Alice")
                r = await call(who, "send", to=[to], text=f"your turn {i}")
                if r["error"]:
                    stopped = {"at": i, **r}
                    break
            print(json.dumps({
                "tools": tools,
                "send_schema": schemas["send"],
                "me": me, "bob_me": bob_me, "agents": agents,
                "sent": sent, "got": got, "again": again, "replied": replied,
                "answer": answer, "followed": followed, "unknown": unknown, "bad_reply": bad_reply,
                "found": found, "history": history, "message_id": message_id, "stopped": stopped, "receipts": receipts,
            }))


asyncio.run(main())
