"""A running `capstan dev` per test module, with an account and its API key."""

import base64
import os
import subprocess
import tempfile
import time
import urllib.request

import pytest

from support import binary, call, free_port


@pytest.fixture(scope="module")
def capstan():
    directory = tempfile.mkdtemp(prefix="capstan-py-")
    api_port, rest_port, kafka_port = free_port(), free_port(), free_port()
    log = open(os.path.join(directory, "capstan.log"), "w")
    process = subprocess.Popen(
        [binary(), "dev", "--data-dir", os.path.join(directory, "data"), "--listen", f"127.0.0.1:{api_port}",
         "--gateway-listen", f"127.0.0.1:{rest_port}", "--kafka-listen", f"127.0.0.1:{kafka_port}"],
        stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{api_port}"
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(f"{api}/healthz", timeout=1)
            break
        except OSError:
            assert process.poll() is None and time.time() < deadline, open(log.name).read()
            time.sleep(0.1)
    credentials = {"email": "py@example.com", "password": "correct horse battery"}
    call(api, "POST", "/v2/auth/signup", body=credentials)
    token = call(api, "POST", "/v2/auth/login", body=credentials)["token"]
    key = call(api, "POST", "/v2/api-keys", auth=f"Bearer {token}", body={"name": "py"})["key"]
    auth = "Basic " + base64.b64encode(f"py@example.com:{key}".encode()).decode()
    yield {"api": api, "auth": auth, "kafka": f"127.0.0.1:{kafka_port}", "rest": f"http://127.0.0.1:{rest_port}"}
    process.terminate()
    process.wait(timeout=30)
    log.close()
