"""Each system alone (no other server alive, none frozen): one-text sentiment at 64 connections, 3 rounds of 8 s; translate-1 beam 4 at 32.

python -m experiments.peers_alone bentoml litserve-2x1 litserve-2x1-2api
"""

import sys
from pathlib import Path

from loadtests.mixed import drive, json_body
from loadtests.server import ServerProcess, ServiceProcess
from loadtests.texts import CAPTIONS, REVIEWS

sent = [json_body({"texts": [t]}) for t in REVIEWS]
tr = [json_body({"texts": [t], "source": "en", "target": ["de", "fr"][i % 2], "beam_size": 4}) for i, t in enumerate(CAPTIONS)]
py = sys.executable
layouts = {
    "litserve-1x2": {"LITSERVE_WORKERS": "1", "LITSERVE_API_SERVERS": "1", "TORCH_THREADS": "2"},
    "litserve-2x1": {"LITSERVE_WORKERS": "2", "LITSERVE_API_SERVERS": "1", "TORCH_THREADS": "1"},
    "litserve-2x1-2api": {"LITSERVE_WORKERS": "2", "LITSERVE_API_SERVERS": "2", "TORCH_THREADS": "1"},
}
for name in sys.argv[1:]:
    s: ServerProcess
    if name == "bentoml":
        s = ServiceProcess(Path("/tmp/alone-bentoml.log"), WORKERS="2", TORCH_THREADS="1", DEVICE="cpu")
    else:
        env = {**layouts[name], "DEVICE": "cpu", "LITSERVE_MAX_BATCH_SIZE": "64", "LITSERVE_BATCH_TIMEOUT_MS": "5"}
        s = ServerProcess([py, "-m", "loadtests.baselines.litserve_app", "--port", "{port}"], Path(f"/tmp/alone-{name}.log"), env, ready_path="/health")
    try:
        s.wait_ready(300)
        drive(s.url + "/sentiment", sent, 8, 2.0)
        for _ in range(3):
            m = drive(s.url + "/sentiment", sent, 64, 8.0)
            print(name, f"sentiment-1 c=64: {m.rps:.0f} req/s p99 {m.p99_ms:.0f} ms", flush=True)
        drive(s.url + "/translate", tr, 4, 2.0)
        m = drive(s.url + "/translate", tr, 32, 10.0)
        print(name, f"translate-1 beam 4 c=32: {m.rps:.1f} req/s p99 {m.p99_ms:.0f} ms", flush=True)
    finally:
        s.stop()
