"""Run the fake BrowserStack as a process: `python -m tests.standins.serve_browserstack`.

    python -m tests.standins.serve_browserstack --port 8011 --username U --access-key K

From the repository root. `qgjob up` starts it for its SIMULATED BrowserStack worker; it
serves until killed and prints one line saying where.
"""

from __future__ import annotations

import argparse

import uvicorn

from tests.standins.browserstack import create_browserstack_app


def main() -> None:
    parser = argparse.ArgumentParser(description="The fake BrowserStack (SIMULATED).")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--access-key", required=True)
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    app = create_browserstack_app(
        username=args.username, access_key=args.access_key, parallel=args.parallel
    )
    print(f"SIMULATED BrowserStack on http://127.0.0.1:{args.port}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
