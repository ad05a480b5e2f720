"""What both screenshot drivers do in JupyterLab: open a notebook, wait until it is shown, run every cell."""
from __future__ import annotations

import time


def open_and_run_all(driver, url: str, settle_s: float = 5.0) -> None:
    """Load ``url`` (a notebook in JupyterLab), wait up to two minutes for the notebook panel, then
    run all cells."""
    driver.get(url)
    for _ in range(120):
        time.sleep(1)
        if driver.execute_script("return !!(window.jupyterapp && document.querySelector('.jp-Notebook'))"):
            break
    time.sleep(settle_s)
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
