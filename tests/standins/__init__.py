"""Stand-ins for the programs and services the worker drives, speaking their exact formats.

- `fake_npx.py`: `npx appwright test …`; writes a real-schema Playwright JSON report whose
  outcome the spec file decides through `// qgjob-fake:` comments (see `directives.py`).
- `fake_adb.py`: `adb devices -l`, `getprop sys.boot_completed`, `install`, `uninstall`, with
  devices and injected failures read from a JSON state file.
- `browserstack.py`: BrowserStack's App Automate REST API (and a minimal WebDriver hub) as a
  Starlette app whose state a test can inspect and fault on demand.

The executables and the modules they import use the standard library only, so that they run
under any `python3` on PATH. See README.md in this folder for the full behaviour.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
FAKE_NPX = HERE / "fake_npx.py"
FAKE_ADB = HERE / "fake_adb.py"

__all__ = ["FAKE_ADB", "FAKE_NPX"]
