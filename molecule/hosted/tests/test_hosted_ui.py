"""The hosted Prefect server's UI in a real browser: headless Chromium (Debian package `chromium`), driven through its
DevTools protocol, logs in with the server's basic auth on the UI's own login page and finds the deployment, then
the last flow run's table artifact (top-gainers-<ccy>, published by flow_app/gainers_elt) on the run's page and the
artifact's own page, with its first rows rendered in the table.

Run by molecule/hosted/verify.yml against the deployed stack: HOSTED_UI_URL (the server's public root URL),
HOSTED_UI_AUTH_STRING (its basic auth, "user:password"), HOSTED_UI_FLOW and HOSTED_UI_DEPLOYMENT (the catalogue's
first entry), HOSTED_UI_DEPLOYMENT_ID, HOSTED_UI_FLOW_RUN_ID (the run verify.yml triggered). On failure a screenshot of the page is kept in .cache/hosted-ui-failure.png
(and its text next to it)."""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.sync.client import connect

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / ".cache"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium with one page, spoken to over the DevTools protocol's WebSocket."""

    def __init__(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="hosted-ui-chromium-")
        flags = ["--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--no-default-browser-check", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
                 f"--user-data-dir={self.profile}", "--window-size=1400,1000"]
        if os.geteuid() == 0:
            flags.append("--no-sandbox")  # Chromium's sandbox refuses root
        self.proc = subprocess.Popen([CHROMIUM, *flags, "about:blank"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("Chromium did not open its DevTools port within 60 s")
            time.sleep(0.2)
        port = int(port_file.read_text().splitlines()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            page = next(target for target in json.load(resp) if target["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=20)
        self.ids = itertools.count(1)

    def call(self, method: str, **params):
        ident = next(self.ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:  # events arrive in between; only our answer counts
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for(self, predicate: str, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(f"Boolean({predicate})"):
                return True
            time.sleep(0.5)
        return False

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        if getattr(self, "ws", None):
            self.ws.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)  # its own session: Chromium and its helper processes
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture()
def browser(request):
    if not CHROMIUM:
        pytest.fail("chromium is not installed (scripts/system_deps.sh installs the Debian package)")
    page = Browser()
    page.call("Page.enable")
    page.call("Runtime.enable")
    yield page
    if getattr(request.node, "failed", False):
        ARTIFACTS.mkdir(exist_ok=True)
        try:
            page.screenshot(ARTIFACTS / "hosted-ui-failure.png")
            (ARTIFACTS / "hosted-ui-failure.txt").write_text(page.text())
            print(f"screenshot kept: {ARTIFACTS / 'hosted-ui-failure.png'}")
        except Exception as err:  # the failure itself matters more than its screenshot
            print(f"no screenshot: {err}")
    page.close()


PASSWORD_INPUT = "document.querySelector('input[type=password]')"
# The page's text; no body yet while a navigation is under way.
TEXT = "(document.body ? document.body.innerText : '')"


def log_in(page: Browser, auth_string: str) -> None:
    """The UI's login page (shown because the API answers 401): type the auth string, press the button."""
    assert page.wait_for(PASSWORD_INPUT), "the UI did not ask for the server's password: " + page.text()[:500]
    page.evaluate(f"""(() => {{
        const input = {PASSWORD_INPUT};
        input.focus();
        Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(input, {json.dumps(auth_string)});
        input.dispatchEvent(new Event('input', {{bubbles: true}}));
        const button = [...document.querySelectorAll('button')].find(b => /log ?in|sign ?in|submit/i.test(b.innerText))
                       || document.querySelector('button[type=submit]');
        button.click();
    }})()""")
    assert page.wait_for(f"!{PASSWORD_INPUT}", 30), "the login page stayed: " + page.text()[:500]


def test_the_deployment_is_on_the_hosted_servers_ui(browser):
    root = os.environ["HOSTED_UI_URL"].rstrip("/")
    flow, deployment = os.environ["HOSTED_UI_FLOW"], os.environ["HOSTED_UI_DEPLOYMENT"]
    browser.navigate(f"{root}/deployments")
    log_in(browser, os.environ["HOSTED_UI_AUTH_STRING"])
    # Where the login page sends the browser back to may be the dashboard: ask for the list again.
    browser.navigate(f"{root}/deployments")
    found = browser.wait_for(f"{TEXT}.includes({json.dumps(deployment)}) && {TEXT}.includes({json.dumps(flow)})", 60)
    assert found, f"deployment {flow}/{deployment} not on {root}/deployments: " + browser.text()[:1000]
    # The deployment's own page answers from the server's database too.
    browser.navigate(f"{root}/deployments/deployment/{os.environ['HOSTED_UI_DEPLOYMENT_ID']}")
    assert browser.wait_for(f"{TEXT}.includes({json.dumps(deployment)})", 60), \
        "the deployment's page did not show it: " + browser.text()[:1000]


def api(path: str, body: dict) -> object:
    """POST to the hosted server's API with its basic auth (what the page must show is read from the API)."""
    root = os.environ["HOSTED_UI_URL"].rstrip("/")
    auth = base64.b64encode(os.environ["HOSTED_UI_AUTH_STRING"].encode()).decode()
    request = urllib.request.Request(f"{root}/api{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Basic {auth}"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.load(resp)


def click_tab(page: Browser, label: str) -> None:
    """Select one of a page's tabs (the flow run page has no URL per tab)."""
    tab = f"[...document.querySelectorAll('li.p-tab,[role=tab],button')].find(e => e.innerText.trim() === {json.dumps(label)})"
    assert page.wait_for(tab, 60), f"no {label} tab on the page: " + page.text()[:1000]
    page.evaluate(f"{tab}.click()")


def test_the_last_flow_runs_table_artifact_is_on_the_hosted_servers_ui(browser):
    root = os.environ["HOSTED_UI_URL"].rstrip("/")
    run_id = os.environ["HOSTED_UI_FLOW_RUN_ID"]
    artifacts = api("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}, "type": {"any_": ["table"]}}})
    tables = [a for a in artifacts if re.fullmatch(r"top-gainers-[a-z]{3}", a.get("key") or "")]
    assert len(tables) == 1, f"flow run {run_id} has no single top-gainers table artifact: {[a.get('key') for a in artifacts]}"
    artifact = tables[0]
    rows = json.loads(artifact["data"]) if isinstance(artifact["data"], str) else artifact["data"]
    assert rows, f"the table artifact {artifact['key']} of flow run {run_id} is empty"
    key, first = artifact["key"], rows[0]

    # Logged out, a run's page answers "Page not found" instead of the login page: log in from the list first.
    browser.navigate(f"{root}/deployments")
    log_in(browser, os.environ["HOSTED_UI_AUTH_STRING"])
    browser.navigate(f"{root}/runs/flow-run/{run_id}")
    click_tab(browser, "Artifacts")
    assert browser.wait_for(f"{TEXT}.includes({json.dumps(key)})", 60), \
        f"the flow run's Artifacts tab does not show {key}: " + browser.text()[-1000:]

    # The artifact's page renders the rows as a table: the first row's coin is in it.
    browser.navigate(f"{root}/artifacts/artifact/{artifact['id']}")
    table = "[...document.querySelectorAll('table')].map(t => t.innerText).join('\\n')"
    wanted = [str(first["name"]), str(first["symbol"])]
    found = browser.wait_for(f"{TEXT}.includes({json.dumps(key)}) && "
                             + " && ".join(f"{table}.includes({json.dumps(v)})" for v in wanted), 60)
    assert found, f"artifact {key} ({artifact['id']}) does not show its first row {wanted}: " + browser.text()[:1500]
    assert browser.evaluate("document.querySelectorAll('table tbody tr').length") >= min(len(rows), 2), \
        "the artifact's table has fewer rows than the artifact: " + browser.text()[:1500]
