"""``/mcp``: the account's agents and directory searches as MCP tools, over the official SDK's
Streamable HTTP transport (stateless). ``auth`` turns an account key into the SDK's access
token, ``tools`` lists and calls the tools of that key's account, ``endpoint`` builds the
server, its session manager and the ASGI routes the app mounts."""
