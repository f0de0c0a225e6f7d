"""A worker's event loop learns that its commands exited through pidfds (on Linux ≥ 5.3).

Run in a child interpreter: the child watcher belongs to the process's event loop policy,
and this test session's own loop must not be switched over.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.support.servers import REPO

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from dispatch.processes import run_shell, watch_children_with_pidfds

    async def main():
        switched = watch_children_with_pidfds()
        watcher = type(asyncio.get_event_loop_policy().get_child_watcher()).__name__
        done = [await run_shell(f"echo {n}; exit {n}", env=os.environ) for n in range(3)]
        killed = await run_shell("sleep 30", env=os.environ, timeout_s=0.2, kill_grace_s=1)
        return {
            "switched": switched,
            "watcher": watcher,
            "codes": [d.exit_code for d in done],
            "output": [d.output.strip() for d in done],
            "killed": [killed.exit_code, str(killed.stopped)],
        }

    print(json.dumps(asyncio.run(main())))
    """
)


def test_commands_end_through_pidfds_and_report_as_before() -> None:
    ran = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", SCRIPT],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    found = json.loads(ran.stdout)
    if sys.version_info < (3, 12):  # 3.12+ chose pidfds by itself
        assert found["switched"] and found["watcher"] == "PidfdChildWatcher"
    assert found["codes"] == [0, 1, 2]
    assert found["output"] == ["0", "1", "2"]
    assert found["killed"] == [-15, "timeout"]
