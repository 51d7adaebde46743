"""An MCP agent hands a relay to a headless runner (`weavectl agent run -- python3 worker.py`)
and receives its result; `agents` shows the runner busy while its command runs; a plain message
gets the command's stdout as its reply, a failing command an error. Run by tests/mcp.rs."""

import asyncio
import json
import os

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def call(session, tool, **arguments):
    result = await session.call_tool(tool, arguments)
    data = result.structured_content or json.loads(result.content[0].text)
    return {"error": bool(result.is_error), **data}


async def until(predicate, what, seconds=15):
    for _ in range(int(seconds / 0.1)):
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise SystemExit(f"never: {what}")


async def main():
    server = StdioServerParameters(
        command=os.environ["WEAVECTL"],
        args=["mcp", "--session", os.environ["SESSION"], "--name", "Owner"],
        env={"WEAVE_HOME": os.environ["WEAVE_HOME"]},
    )
    async with stdio_client(server) as (r, w), ClientSession(r, w) as owner:
        await owner.initialize()

        async def runner():
            agents = (await call(owner, "agents"))["agents"]
            return next((a for a in agents if a["name"] == "Runner" and a["presence"] == "online"), None)

        await until(runner, "the runner online")
        plan = await call(owner, "relay", relay_id="docs", steps=[
            {"type": "message", "to": "Runner", "text": "slow: build the docs"},
        ])

        async def busy():
            a = await runner()
            return a if a and a["activity"] == "busy" else None

        busy_seen = await until(busy, "the runner busy")
        # The result arrives as a notice of the inbox (the owner waits for it).
        async def result():
            got = await call(owner, "inbox", wait_s=5)
            return [n for n in got["notices"] if n["type"] == "action.result"] or None

        results = await until(result, "the relay's result", seconds=30)
        status = await call(owner, "relay_status", relay_id="docs")
        idle = await until(lambda: _idle(runner), "the runner idle again")
        # A plain message: the stdout is the reply; a failing command answers an error.
        await call(owner, "send", to=["Runner"], text="hello runner")
        reply = await until(lambda: _messages(owner), "the runner's reply")
        await call(owner, "send", to=["Runner"], text="please fail")
        failed = await until(lambda: _messages(owner), "the runner's error")
        finish = await call(owner, "relay", relay_id="docs", finish=True, summary="docs built")
        print(json.dumps({"plan": plan, "busy": busy_seen, "results": results, "status": status,
                          "idle": idle, "reply": reply, "failed": failed, "finish": finish}))


async def _idle(runner):
    a = await runner()
    return a if a and a["activity"] == "idle" else None


async def _messages(owner):
    got = await call(owner, "inbox", wait_s=5)
    return got["messages"] or None


asyncio.run(main())
