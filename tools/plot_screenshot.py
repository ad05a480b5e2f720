"""Screenshot `growkit plot` as a researcher sees it in JupyterLab (a developer tool, like live_view_screenshot.py).

Copies the given run directories into a scratch folder, starts JupyterLab there, opens a two-cell notebook in
headless Chromium that runs `growkit plot` on them and shows the image, and saves a screenshot.

Needs: Debian's chromium and chromium-driver, and `pip install selenium` (not project dependencies).
    python tools/plot_screenshot.py docs/growkit_plot_jupyterlab.png RUN_DIR...
"""
import json
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


def cell(src: str) -> dict:
    return {"cell_type": "code", "metadata": {}, "source": src, "outputs": [], "execution_count": None}


def main(shot: Path, runs: list[Path]) -> int:
    work = Path(tempfile.mkdtemp(prefix="growkit-plot-"))
    for r in runs:
        shutil.copytree(r, work / r.name)
    names = " ".join(r.name for r in runs)
    nb = {"cells": [cell(f"import sys\n!{{sys.executable}} -m growkit plot {names} --out curves.png"),
                    cell("from IPython.display import Image\nImage(\"curves.png\", width=640)")],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (work / "plot.ipynb").write_text(json.dumps(nb))
    lab = subprocess.Popen([str(JUPYTER), "lab", "--no-browser", "--port", "8898", "--ip", "127.0.0.1",
                            "--ServerApp.token=", "--ServerApp.password=", "--LabApp.expose_app_in_browser=True",
                            f"--ServerApp.root_dir={work}", "--allow-root"],
                           stdout=open(work / "lab.log", "w"), stderr=subprocess.STDOUT)
    opts = webdriver.ChromeOptions()
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
              "--disable-background-networking", "--disable-component-update", "--window-size=1400,1150",
              f"--user-data-dir={work / 'chrome'}"]:
        opts.add_argument(a)
    opts.binary_location = "/usr/bin/chromium"
    import urllib.request
    for _ in range(120):  # JupyterLab takes seconds to minutes to listen on a loaded machine
        try:
            urllib.request.urlopen("http://127.0.0.1:8898/lab", timeout=2)
            break
        except OSError:
            time.sleep(1)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        open_and_run_all(d, "http://127.0.0.1:8898/lab/tree/plot.ipynb")
        t0 = time.time()
        while time.time() - t0 < 300 and not d.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img"):
            time.sleep(1)
        time.sleep(3)
        for b in d.find_elements(By.TAG_NAME, "button"):  # JupyterLab's "news?" toast
            if b.text == "No":
                b.click()
        d.save_screenshot(str(shot))
        ok = bool(d.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img"))
        print("the plot is shown" if ok else "no image appeared")
        return 0 if ok else 1
    finally:
        d.quit()
        lab.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve(), [Path(p).resolve() for p in sys.argv[2:]]))
