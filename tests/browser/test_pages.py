"""The web pages in a real browser against a live service and a real worker process.

The worker runs the `local` executor with a small script: one spec passes, one fails, and
one holds its job RUNNING until the test opens a gate file — so the test sees the run page
change while it runs, without reloading.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import Browser, BrowserContext, Dialog, Page, expect

from app.links import sign_run_link
from app.signing import signer_for
from tests.browser.conftest import assert_accessible
from tests.conftest import Api
from tests.support.servers import child_env
from tests.support.web import submit
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

ORG = "acme"
SPECS = ["tests/login.spec.ts", "tests/cart.spec.ts", "tests/pay.spec.ts"]
WAIT_MS = 20_000
PHONE = {"width": 390, "height": 844}

# pay.spec waits for the gate; cart.spec fails; the rest pass.
SCRIPT = """
import pathlib, sys, time
spec, gate = sys.argv[1], pathlib.Path(sys.argv[2])
print("running", spec)
if "pay" in spec:
    while not gate.exists():
        time.sleep(0.05)
if "cart" in spec:
    print("expected 1 item in the cart, found 2")
    sys.exit(1)
"""


@pytest.fixture
async def worker(api: Api, tmp_path: Path) -> AsyncIterator[Path]:
    """A `qgjob worker` process; yields the gate file that lets pay.spec finish."""
    script = tmp_path / "spec.py"
    script.write_text(SCRIPT)
    gate = tmp_path / "gate"
    command = f"{shlex.quote(sys.executable)} {script} {{test_path}} {gate}"
    env = child_env(
        {
            "QGJOB_SERVER_URL": api.url,
            "QGJOB_TOKEN": await api.token(ORG, "worker"),
            "QGJOB_DATA_DIR": str(tmp_path / "worker-data"),
        }
    )
    args = ["--target", "emulator", "--name", "pixel-lab-1", "--heartbeat-interval", "0.5"]
    process = WorkerProcess(
        args=[*args, "--executor", "local", "--command", command],
        env=env,
        log_path=tmp_path / "worker.log",
    )
    await process.start()
    try:
        yield gate
    finally:
        gate.touch()
        if process.running:
            await process.kill9()


async def sign_in(context: BrowserContext, api: Api, token: str) -> Page:
    page = await context.new_page()
    await page.goto(f"{api.url}/ui")
    await expect(page).to_have_url(f"{api.url}/ui/login?next=%2Fui")
    await assert_accessible(page)
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{api.url}/ui")
    return page


async def job_status(pool: asyncpg.Pool, run_id: str, spec: str) -> str:
    status: str = await pool.fetchval(
        "SELECT status::text FROM jobs WHERE run_id = $1 AND test_path = $2", run_id, spec
    )
    return status


async def wait_for_status(pool: asyncpg.Pool, run_id: str, spec: str, wanted: str) -> None:
    deadline = time.monotonic() + 30
    while (status := await job_status(pool, run_id, spec)) != wanted:
        assert time.monotonic() < deadline, f"{spec} stayed {status}, never {wanted}"
        await asyncio.sleep(0.05)


async def test_run_page_follows_the_run_live_and_reruns_the_failed_spec(
    api: Api, pool: asyncpg.Pool, browser: Browser, worker: Path, screenshots: Path
) -> None:
    token = await api.token(ORG)
    run = await submit(api, token, ORG, SPECS)
    run_id = run["run_id"]
    await wait_for_status(pool, run_id, "tests/pay.spec.ts", "RUNNING")

    context = await browser.new_context()
    page = await sign_in(context, api, token)
    await expect(page.get_by_role("link", name=run_id[:8])).to_be_visible()
    await page.screenshot(path=screenshots / "overview.png", full_page=True)
    await assert_accessible(page)

    await page.get_by_role("link", name=run_id[:8]).click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text(run_id)
    for spec in SPECS:
        await expect(page.get_by_role("rowheader", name=spec)).to_be_visible()
    pay = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=SPECS[2]))
    await expect(pay).to_contain_text("RUNNING")
    await expect(page.get_by_text("Worker: pixel-lab-1")).to_be_visible()
    await page.screenshot(path=screenshots / "run-running.png", full_page=True)

    # Cancelling cannot be undone: the button asks first, and "no" cancels nothing.
    asked: list[str] = []

    async def say_no(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.dismiss()

    page.once("dialog", say_no)
    await page.get_by_role("button", name="Cancel run").click()
    for _ in range(100):
        if asked:
            break
        await asyncio.sleep(0.05)
    assert asked == [
        "Cancel this run? Its unfinished jobs will not run; the jobs that finished keep their"
        " results."
    ]
    assert await job_status(pool, run_id, SPECS[2]) == "RUNNING"

    # The page changes by itself (no reload) once the held job ends.
    await page.evaluate("window.__sameDocument = true")
    worker.touch()
    await expect(pay).to_contain_text("COMPLETED", timeout=WAIT_MS)
    cart = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=SPECS[1]))
    await expect(cart).to_contain_text("FAILED")
    await expect(cart).to_contain_text("the command exited with code 1")
    await expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    assert await page.evaluate("window.__sameDocument === true")
    await page.screenshot(path=screenshots / "run-finished.png", full_page=True)
    await assert_accessible(page)

    # The log of the failed job, through the page's own session.
    await cart.get_by_role("link", name=f"log of {SPECS[1]}").click()
    await expect(page.locator("body")).to_contain_text("expected 1 item in the cart, found 2")
    await page.go_back()

    # A button's POST without the form's CSRF token changes nothing, even with the session.
    forged = await context.request.post(f"{api.url}/ui/runs/{run_id}/rerun-failed", form={})
    assert forged.status == 403
    assert await pool.fetchval("SELECT count(*) FROM runs WHERE rerun_of = $1", run_id) == 0

    await page.get_by_role("button", name="Re-run failed (1)").click()
    await expect(page.get_by_text("Re-run of the failed specs of")).to_be_visible()
    # The notice is said once: a reload does not say it again.
    notice = page.get_by_text("This run repeats the failed specs of the run it links to.")
    await expect(notice).to_be_visible()
    await expect(page).not_to_have_url(re.compile(r"notice="))
    await page.reload()
    await expect(page.get_by_text("Re-run of the failed specs of")).to_be_visible()
    await expect(notice).to_have_count(0)
    await expect(page.get_by_role("rowheader", name=SPECS[1])).to_be_visible()
    await expect(page.get_by_role("rowheader", name=SPECS[0])).to_have_count(0)
    new_run_id = page.url.split("/ui/runs/", 1)[1].split("?", 1)[0]
    assert new_run_id != run_id
    rerun_of = await pool.fetchval("SELECT rerun_of FROM runs WHERE run_id = $1", new_run_id)
    assert str(rerun_of) == run_id

    await page.set_viewport_size(PHONE)
    await page.goto(f"{api.url}/ui/runs/{run_id}")
    await page.screenshot(path=screenshots / "run-phone.png", full_page=True)
    await assert_accessible(page)
    await page.goto(f"{api.url}/ui/workers")
    await expect(page.get_by_role("rowheader", name="pixel-lab-1")).to_be_visible()
    await page.screenshot(path=screenshots / "workers-phone.png", full_page=True)
    await assert_accessible(page)

    # The workers' table changes every poll (heartbeat ages); reading it sideways on a
    # phone, the reader keeps their place and their keyboard focus.
    table = page.get_by_role("region", name="Workers")
    await table.focus()
    await table.evaluate("wrap => { wrap.scrollLeft = 120; }")
    before = await page.evaluate("document.querySelector('[data-live]').innerHTML")
    await page.wait_for_function(
        "html => document.querySelector('[data-live]').innerHTML !== html", arg=before
    )
    assert await table.evaluate("wrap => wrap.scrollLeft") == 120
    assert await table.evaluate("wrap => wrap === document.activeElement")

    # Signed out elsewhere: the page stops following and says so, instead of freezing.
    await context.clear_cookies()
    await expect(page.get_by_role("status").filter(has_text="Live updates stopped")).to_be_visible(
        timeout=WAIT_MS
    )
    await context.close()


async def test_another_org_sees_nothing_and_a_link_reads_one_run(
    api: Api, pool: asyncpg.Pool, browser: Browser, worker: Path, screenshots: Path
) -> None:
    run = await submit(api, await api.token(ORG), ORG, SPECS)
    run_id = run["run_id"]
    await wait_for_status(pool, run_id, "tests/pay.spec.ts", "RUNNING")

    stranger = await browser.new_context()
    page = await sign_in(stranger, api, await api.token("globex"))
    await expect(page.get_by_text("No runs yet")).to_be_visible()
    await page.goto(f"{api.url}/ui/runs/{run_id}")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    assert "tests/pay.spec.ts" not in await page.content()
    await page.goto(f"{api.url}/ui/workers")
    await expect(page.get_by_text("No workers have registered")).to_be_visible()
    await page.screenshot(path=screenshots / "other-org.png", full_page=True)
    await stranger.close()

    # A signed link (what a check run's "Details" points at) reads the run with no session.
    signer = signer_for(api.settings)
    view = sign_run_link(signer, ORG, run_id, expires_at=time.time() + 600)
    reader = await browser.new_context(viewport=PHONE)
    page = await reader.new_page()
    await page.goto(f"{api.url}/ui/runs/{run_id}?view={view}")
    for spec in SPECS:
        await expect(page.get_by_role("rowheader", name=spec)).to_be_visible()
    await expect(page.get_by_text("Read-only link")).to_be_visible()
    await expect(page.get_by_role("button")).to_have_count(0)
    await page.screenshot(path=screenshots / "read-only-link-phone.png", full_page=True)
    worker.touch()
    pay = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=SPECS[2]))
    await expect(pay).to_contain_text("COMPLETED", timeout=WAIT_MS)
    await page.get_by_role("link", name=SPECS[1], exact=True).click()
    await expect(page.get_by_role("heading", level=2, name="Attempts")).to_be_visible()
    await expect(page.get_by_role("row").nth(1)).to_contain_text("pixel-lab-1")
    await page.screenshot(path=screenshots / "job-phone.png", full_page=True)
    await assert_accessible(page)

    expired = sign_run_link(signer, ORG, run_id, expires_at=time.time() - 1)
    await page.goto(f"{api.url}/ui/runs/{run_id}?view={expired}")
    await expect(page.get_by_role("heading", level=1)).to_have_text("This link has expired")
    await reader.close()
