# AgentScope's sandboxed workspaces (E2BWorkspace and the others built on SandboxedWorkspaceBase) look for
# this file in their gateway home (~/.agentscope for E2B's `user`): when it exists they skip their network
# bootstrap (apt, uv, pip) and launch it as `<gateway home>/.venv/bin/python -u <this file> --port N`.
# On this image sandboxd already serves the gateway API on that port, so this starts nothing: it checks
# that the port answers /health and says who serves it, or exits 1 with the reason (AgentScope shows the
# tail of gateway.log, where this output goes, when its own health poll gives up).
import argparse
import sys
import urllib.error
import urllib.request


def main() -> int:
    parser = argparse.ArgumentParser(description="sandboxd serves the MCP gateway; this only checks it is there")
    parser.add_argument("--port", type=int, default=5600)
    # Flags other workspace kinds pass (--host, --auth-token, ...) change nothing here.
    args, _ = parser.parse_known_args()
    url = f"http://127.0.0.1:{args.port}/health"
    # No waiting: the daemon serving the gateway is the one that runs this command.
    try:
        with urllib.request.urlopen(url, timeout=5) as res:
            print(f"sandboxd serves the MCP gateway on port {args.port} (GET /health: {res.status}); nothing started")
            return 0
    except urllib.error.HTTPError as err:
        reason = f"HTTP {err.code}"
    except OSError as err:
        reason = str(err)
    print(
        f"no MCP gateway answers {url} ({reason}). On this image the gateway is sandboxd's own, on its "
        "--gateway-port (5600 unless changed; 0 turns it off): give the workspace that gateway_port.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
