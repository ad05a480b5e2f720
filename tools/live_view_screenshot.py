"""Check the quickstart's live view in a real JupyterLab and take screenshots (a developer tool).

Starts JupyterLab on 127.0.0.1, opens a copy of notebooks/00_quickstart.ipynb in headless Chromium
(runs go to a scratch folder, so nothing is reused from earlier runs), runs all cells, screenshots the
view while growing, clicks "Stop growing, fine-tune now", checks that growing stopped at the depth it had,
and screenshots the finished view. Prints what it saw; exits 1 if the button had no effect.

Needs: Debian's chromium and chromium-driver, and `pip install selenium` (not project dependencies).
    python tools/live_view_screenshot.py docs/
"""
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from lab import open_and_run_all  # tools/lab.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
JUPYTER = Path(sys.executable).parent / "jupyter"


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="growkit-live-"))
    nb = json.loads((ROOT / "notebooks" / "00_quickstart.ipynb").read_text())
    for c in nb["cells"]:
        if "parameters" in c["metadata"].get("tags", []):
            src = "".join(c["source"])
            src = re.sub(r'^runs_dir = .*$', f'runs_dir = "{work / "runs"}"', src, flags=re.M)
            src = re.sub(r'^figures_dir = .*$', f'figures_dir = "{work / "figures"}"', src, flags=re.M)
            c["source"] = src
    (work / "00_quickstart.ipynb").write_text(json.dumps(nb))
    lab_py = ROOT / ".venv" / "bin" / "jupyter"
    lab = subprocess.Popen([str(lab_py if lab_py.exists() else JUPYTER), "lab", "--no-browser", "--port", "8899",
                            "--ip", "127.0.0.1", "--ServerApp.token=", "--ServerApp.password=",
                            "--LabApp.expose_app_in_browser=True", f"--ServerApp.root_dir={work}", "--allow-root"],
                           stdout=open(work / "lab.log", "w"), stderr=subprocess.STDOUT)
    opts = webdriver.ChromeOptions()
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--window-size=1400,1000", f"--user-data-dir={work / 'chrome'}"]:
        opts.add_argument(a)
    opts.binary_location = "/usr/bin/chromium"
    time.sleep(8)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)

    def status() -> str:
        return d.execute_script("return [...document.querySelectorAll('.widget-html-content')]"
                                ".map(e => e.innerText).join(' | ')")

    def shot(name: str) -> None:
        for b in d.find_elements(By.TAG_NAME, "button"):  # JupyterLab's "news?" toast
            if b.text == "No":
                b.click()
        d.execute_script("const w = document.querySelector('.jupyter-widgets.widget-vbox');"
                         "if (w) { w.scrollIntoView({block: 'center'}); }")
        time.sleep(1.5)
        d.save_screenshot(str(out / name))

    try:
        open_and_run_all(d, "http://127.0.0.1:8899/lab/tree/00_quickstart.ipynb")
        t0 = time.time()
        while time.time() - t0 < 300 and not re.search(r"epoch (1[5-9]|[2-9]\d) \(grow\)", status()):
            time.sleep(0.5)
        shot("live_view_growing.png")
        at_click = status()
        [btn] = [b for b in d.find_elements(By.TAG_NAME, "button") if "Stop growing" in b.text]
        btn.click()
        t0 = time.time()
        while time.time() - t0 < 300 and "done" not in status():
            time.sleep(1)
        shot("live_view_done.png")
        final = status()
        print("when clicked:", at_click)
        print("at the end:  ", final)
        arch = lambda s: re.search(r"(Basic|Plain|Bottleneck)\w+(-\d+)+", s).group(0)  # noqa: E731
        grew_after = arch(final) != arch(at_click)
        print("growing stopped where the click found it" if not grew_after else
              "the net grew at most one more time after the click" if final else "no final status")
        return 0 if "done" in final else 1
    finally:
        d.quit()
        lab.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")))
