"""The explorer in a real browser: JupyterLab headless on a loopback port, Debian's chromium driven by
selenium through Debian's chromedriver. Runs every cell of notebook 14, moves the example slider,
and checks the page: the widget rendered and the token strip changed; the per-iteration grid renders
under the strip, and a click on a token's button selects that token in both. Screenshot: runs/browser/.

Skipped where chromium or chromedriver is missing, unless ANIRA_BROWSER_TEST=required (.ci/run
installs both and sets it, so CI cannot skip it)."""

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from anira_lib.notebooks import load_notebook
from anira_lib.tasks import get_task

from .conftest import write_dumps

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOT = Path("runs") / "browser" / "explorer.png"
FAILURE_SHOT = Path("runs") / "browser" / "last_page.png"  # written at the end of every run, pass or fail
REQUIRED = os.environ.get("ANIRA_BROWSER_TEST") == "required"

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            return f"{path} not found: apt-get install chromium chromium-driver (.ci/run does)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed: pip install -e '.[dev]'"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str, poll: float = 0.25, last=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            value = predicate()
        except AssertionError:
            raise
        except Exception:  # noqa: BLE001 - the page or server is not there yet
            value = None
        if value:
            return value
        time.sleep(poll)
    seen = f" (last seen: {last()!r})" if last is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{seen}")


@contextlib.contextmanager
def _jupyterlab(tmp_path, *flags, env=None, cwd=None):
    """A JupyterLab server on 127.0.0.1 with a token and `flags`, its state under tmp_path, stopped on
    exit. Yields (base url, token)."""
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"), **(env or {})}
    log_path = tmp_path / "lab.log"
    log = open(log_path, "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", *flags, "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly", "--allow-root"],  # CI runs as root; nothing asks PyPI
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    base = f"http://127.0.0.1:{port}"
    try:
        def up():
            if server.poll() is not None:
                raise AssertionError(f"JupyterLab exited ({server.returncode}):\n{log_path.read_text()[-2000:]}")
            try:
                return urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).status == 200
            except OSError:
                return False

        _wait(up, 90, f"JupyterLab on {base} (log: {log_path})")
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on 127.0.0.1 with a token, rooted at a folder holding notebook 14 set to
    explore a tiny run's dumps. Yields (url of the notebook, root)."""
    import nbformat

    run = write_dumps(tmp_path / "run", get_task("mano", max_ops=3, modulus=5), [1, 2, 3], n_per_knob=6)
    nb = load_notebook(Path("notebooks") / "14_explorer.py")
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(  # what papermill injects, by hand
        f"run_dir = {str(run)!r}\nfigure_dir = {str(tmp_path / 'figures')!r}", metadata={"tags": ["injected-parameters"]}))
    root = tmp_path / "lab"
    root.mkdir()
    nbformat.write(nb, root / "14_explorer.ipynb")
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')  # no news popup
    with _jupyterlab(tmp_path, f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
                     env={"ANIRA_PROGRESS": "off"}) as (base, token):
        yield f"{base}/lab/tree/14_explorer.ipynb?token={token}", tmp_path


@pytest.fixture
def browser(tmp_path):
    reason = _missing()
    if reason:
        if REQUIRED:
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1400,1100", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        try:  # what the page showed last: the screenshot to look at when the test fails
            FAILURE_SHOT.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(FAILURE_SHOT))
        finally:
            driver.quit()


KERNEL_STATUS = """
const w = window.jupyterapp.shell.currentWidget;
if (!w) return 'no current widget';
if (!w.sessionContext) return 'current widget ' + w.constructor.name + ' has no session';
const k = w.sessionContext.session && w.sessionContext.session.kernel;
return k ? k.status : 'no kernel yet';
"""


ALL_CELLS_RAN = """
const w = window.jupyterapp.shell.currentWidget;
const cells = Array.from(w.content.model.cells).filter(c => c.type === 'code');
const k = w.sessionContext.session && w.sessionContext.session.kernel;
return cells.length > 0 && cells.every(c => c.executionCount) && !!k && k.status === 'idle';
"""


def _strip_state(driver) -> tuple[str, str] | None:
    """(data-example, innerHTML) of the first rendered token strip, or None before one renders."""
    found = driver.execute_script(
        "const s = document.querySelector('.jp-OutputArea .anira-strip');"
        "return s ? [s.dataset.example, s.innerHTML] : null;")
    return tuple(found) if found else None


def test_explorer_renders_and_follows_the_slider_in_jupyterlab(browser, lab):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, tmp = lab
    browser.get(url)
    _wait(lambda: browser.execute_script("return !!(window.jupyterapp && document.querySelector('.jp-Notebook'))"),
          120, "JupyterLab to open the notebook")
    _wait(lambda: browser.execute_script(KERNEL_STATUS) == "idle", 120, "the notebook's kernel to be idle",
          last=lambda: browser.execute_script(KERNEL_STATUS))
    browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")
    _wait(lambda: browser.execute_script(ALL_CELLS_RAN), 240, "every code cell to run",
          last=lambda: browser.execute_script(KERNEL_STATUS))
    before = _wait(lambda: _strip_state(browser), 20, "the explorer's token strip to render after every cell ran "
                   "(a widget front end that is missing, jupyterlab_widgets, shows nothing)")
    errors = browser.execute_script(
        "return [...document.querySelectorAll('.jp-OutputArea-output[data-mime-type*=\"error\"]')]"
        ".map(e => e.innerText.slice(0, 300));")
    assert not errors, f"a cell failed in the browser: {errors}"
    assert browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea .anira-explorer"), "the explorer box did not render"
    handles = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea .anira-explorer .noUi-handle"),
                    30, "the explorer's sliders")
    example_handle = handles[0]  # sliders in order: example, token
    before_example = before[0]
    example_handle.click()
    example_handle.send_keys(Keys.ARROW_RIGHT)
    after = _wait(lambda: (s := _strip_state(browser)) and s[0] != before_example and s, 30,
                  f"the token strip to leave example {before_example} after the slider moved")
    assert int(after[0]) == int(before_example) + 1 and after[1] != before[1]
    # the per-iteration grid renders under the strip, and a click on a token's button selects that token
    grid = _wait(lambda: browser.execute_script(
        "const g = document.querySelector('.jp-OutputArea .anira-iterations');"
        "return g ? [g.dataset.selected, g.querySelectorAll('.anira-iteration-cell').length] : null;"),
        20, "the per-iteration grid under the token strip")
    assert int(grid[1]) > 0
    buttons = browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea .anira-token-picker button")
    assert len(buttons) > 2, "the token picker did not render its buttons"
    target = 0 if grid[0] != "0" else 1
    buttons[target].click()
    _wait(lambda: browser.execute_script(
        "const s = document.querySelector('.jp-OutputArea .anira-strip');"
        "const g = document.querySelector('.jp-OutputArea .anira-iterations');"
        f"return s && g && s.dataset.selected === '{target}' && g.dataset.selected === '{target}';"),
        30, f"the strip and the grid to select token {target} after its button was clicked")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000


@pytest.fixture
def project_lab(tmp_path):
    """JupyterLab as `make lab` starts it (configs/lab/jupyter_lab_config.json, from the repository root)."""
    with _jupyterlab(tmp_path, "--config=configs/lab/jupyter_lab_config.json",
                     cwd=Path(__file__).parent.parent) as (base, token):
        yield f"{base}/lab?token={token}"


def test_lab_lists_each_notebook_once_and_opens_the_source_as_a_notebook(browser, project_lab):
    """Issue 30: Lab listed every notebook twice (the .py source and its paired .ipynb) and opened the
    .py in a text editor. Now one entry per source, and a double click opens it as a notebook."""
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.by import By

    browser.get(project_lab)
    sources = sorted(p.name for p in (Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.py"))
    listed = _wait(lambda: (names := browser.execute_script(
        "return [...document.querySelectorAll('.jp-DirListing-item')].map(e => e.getAttribute('title') || e.innerText)"
        ".map(t => t.split('\\n')[0].replace(/^Name: /, ''));")) and len(names) >= len(sources) and names,
        120, "the file browser to list the notebooks")
    names = [n for n in listed if n]
    assert sorted(n for n in names if n.endswith((".py", ".ipynb"))) == sources, names
    item = _wait(lambda: next((e for e in browser.find_elements(By.CSS_SELECTOR, ".jp-DirListing-item")
                               if "01_mano.py" in e.text), None), 30, "01_mano.py's entry to render")
    ActionChains(browser).double_click(item).perform()
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Cell"), 60,
          "01_mano.py to open as a notebook")
    assert not browser.find_elements(By.CSS_SELECTOR, ".jp-FileEditor"), "the source opened in the text editor"
    shot = Path("runs") / "browser" / "lab_file_list.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shot))
