#!/bin/sh
# Makes bench/tmp/venv (gitignored) with AgentScope, whose wheel carries its in-sandbox MCP gateway
# (agentscope/workspace/_mcp_gateway), for the gateway figures of `npm run bench`. The test suite's
# constraints pin the tree.
set -eu
cd "$(dirname "$0")/.."
python3 -m venv bench/tmp/venv
bench/tmp/venv/bin/pip install -q --disable-pip-version-check -c test/python/constraints.txt agentscope==2.0.11 fastapi uvicorn
