"""The dashboard as a person looks at it: Debian's chromium, trusting the cluster's CA
through its NSS certificate store (not --ignore-certificate-errors), opens /status over
HTTPS and renders Dask's Bokeh plots. The screenshot is kept in .cache/artifacts/."""

import os
import subprocess
import time

import pytest
from conftest import SCHEDULER, ip_of
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from helpers import PROJECT

CA = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "ca", "ca.pem")
ARTIFACTS = os.path.join(PROJECT, ".cache", "artifacts")
# Bokeh's documents and the plots (roots) each one shows.
PLOTS = "return (window.Bokeh && Bokeh.documents.length) ? Bokeh.documents[0].roots().length : 0"


def browser(home, profile):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={profile}", "--window-size=1600,1000"]:
        options.add_argument(argument)
    # chromium reads $HOME/.pki/nssdb, as on a person's machine.
    service = Service("/usr/bin/chromedriver", env={**os.environ, "HOME": str(home)})
    return webdriver.Chrome(options=options, service=service)


def trusting_home(tmp_path, trust_ca):
    home = tmp_path / "home"
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True)
    if trust_ca:
        subprocess.run(["certutil", "-A", "-d", f"sql:{nssdb}", "-n", "dask-cluster-ca", "-t", "C,,", "-i", CA], check=True)
    return home


def test_the_status_page_renders_its_plots_over_https(tmp_path):
    driver = browser(trusting_home(tmp_path, trust_ca=True), tmp_path / "profile")
    try:
        driver.get(f"https://{ip_of(SCHEDULER)}:8787/status")
        WebDriverWait(driver, 60).until(lambda d: d.execute_script(PLOTS) >= 3)
        # Let the websocket fill the plots before the picture.
        time.sleep(5)
        os.makedirs(ARTIFACTS, exist_ok=True)
        driver.save_screenshot(os.path.join(ARTIFACTS, "dashboard-status.png"))
        assert "Dask" in driver.title, driver.title
        assert driver.execute_script(PLOTS) >= 3
    finally:
        driver.quit()


def test_without_the_clusters_ca_the_browser_refuses_the_dashboard(tmp_path):
    """Negative control: the same browser without the CA gets no dashboard at all."""
    driver = browser(trusting_home(tmp_path, trust_ca=False), tmp_path / "profile")
    try:
        driver.get(f"https://{ip_of(SCHEDULER)}:8787/status")
        with pytest.raises(TimeoutException):
            WebDriverWait(driver, 10).until(lambda d: d.execute_script(PLOTS) >= 1)
        assert "Dask" not in driver.title, driver.title
    finally:
        driver.quit()
