"""A real external GraphQL client for the subscription tests: Python `gql` over the
graphql-transport-ws protocol (websockets), one connection per process.

Usage: subscribe.py URL [TOKEN]

It connects (the token goes in the connection_init payload as `Authorization`), prints
{"ready": true}, then reads commands from stdin, one JSON object per line:

    {"id": "a", "query": "subscription ...", "variables": {...}}   start a subscription
    {"quit": true}                                                  close and exit

and prints what arrives, one JSON object per line:

    {"id": "a", "data": {...}}      a payload
    {"id": "a", "errors": [...]}    the subscription ended with errors
    {"id": "a", "complete": true}   the server completed it
"""

import asyncio
import json
import sys

from gql import Client
from gql.graphql_request import GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def follow(session, sub_id, query, variables):
    try:
        request = GraphQLRequest(query, variable_values=variables or {})
        async for data in session.subscribe(request):
            emit({"id": sub_id, "data": data})
        emit({"id": sub_id, "complete": True})
    except TransportQueryError as e:
        emit({"id": sub_id, "errors": e.errors or [{"message": str(e)}]})
    except Exception as e:  # the connection went away
        ext = {"code": "TRANSPORT"}
        code = close_code(e)
        if code is not None:
            ext["closeCode"] = code
        emit({"id": sub_id, "errors": [{"message": repr(e), "extensions": ext}]})


def close_code(e):
    """The websocket close code the server sent, if the error came from a close frame."""
    seen = 0
    while e is not None and seen < 10:
        rcvd = getattr(e, "rcvd", None)
        if rcvd is not None and getattr(rcvd, "code", None) is not None:
            return rcvd.code
        if isinstance(getattr(e, "code", None), int):
            return e.code
        e = e.__cause__ or e.__context__
        seen += 1
    return None


async def main():
    url = sys.argv[1]
    token = sys.argv[2] if len(sys.argv) > 2 else ""
    payload = {"Authorization": f"Bearer {token}"} if token else {}
    transport = WebsocketsTransport(
        url=url,
        init_payload=payload,
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        connect_timeout=10,
    )
    loop = asyncio.get_running_loop()
    async with Client(transport=transport, fetch_schema_from_transport=False) as session:
        emit({"ready": True})
        tasks = []
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            cmd = json.loads(line)
            if cmd.get("quit"):
                break
            tasks.append(
                asyncio.create_task(
                    follow(session, cmd["id"], cmd["query"], cmd.get("variables"))
                )
            )
        for t in tasks:
            t.cancel()


if __name__ == "__main__":
    asyncio.run(main())
