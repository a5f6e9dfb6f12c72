"""Drive a server with ``wrk`` (Debian package ``wrk``, ``make install-system``): the benchmark's load generator.

wrk is a C event loop: one thread keeps ``concurrency`` keep-alive connections
busy in a closed loop (each sends its next request when the previous answer is
in) for a fixed time, and costs far less CPU per request than any Python
client, which matters on a 2-core machine where it shares the CPUs with the
server. A Lua script (written here) sends the given JSON bodies in turn and
prints the counts and latency percentiles as JSON.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from loadtests.loadgen import Measurement

SCRIPT = """
local bodies = {%(bodies)s}
local requests = {}
local n = 0
init = function(args)
  for i, body in ipairs(bodies) do
    requests[i] = wrk.format("POST", %(path)s, {["Content-Type"] = "application/json"}, body)
  end
end
request = function()
  n = n %% #requests + 1
  return requests[n]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_RESULT {"requests": %%d, "duration_us": %%d, "status_errors": %%d, "socket_errors": %%d, "p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def _lua_string(raw: bytes) -> str:
    """A Lua long string holding ``raw`` exactly (a level of ``=`` that does not occur in it)."""
    text = raw.decode()
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def script(url: str, bodies: list[bytes]) -> str:
    """The Lua script that POSTs ``bodies`` in turn to ``url``'s path and reports as ``parse`` reads."""
    path = urlsplit(url).path or "/"
    return SCRIPT % {"bodies": ", ".join(_lua_string(b) for b in bodies), "path": _lua_string(path.encode())}


def command(url: str, concurrency: int, duration: float, timeout_s: float, lua: Path) -> list[str]:
    return ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--timeout", f"{timeout_s:g}s", "-s", str(lua), url]


def parse(stdout: str, stderr: str, returncode: int, concurrency: int, cpu_s: float) -> Measurement:
    """One wrk run's report (the ``WRK_RESULT`` line the script prints) as a ``Measurement``."""
    line = next((ln for ln in stdout.splitlines() if ln.startswith("WRK_RESULT ")), None)
    if returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({returncode}): {stdout[-2000:]}{stderr[-2000:]}")
    r = json.loads(line.removeprefix("WRK_RESULT "))
    errors = r["status_errors"] + r["socket_errors"]
    return Measurement("wrk", concurrency, r["duration_us"] / 1e6, r["requests"] - r["status_errors"], errors, r["p50_us"] / 1000, r["p99_us"] / 1000, cpu_s)


def measure(url: str, bodies: list[bytes], concurrency: int, duration: float, timeout_s: float = 60.0) -> Measurement:
    """``concurrency`` closed-loop connections POSTing ``bodies`` (JSON, in turn) to ``url`` for ``duration`` seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "post.lua"
        lua.write_text(script(url, bodies))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(command(url, concurrency, duration, timeout_s, lua), capture_output=True, text=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return parse(proc.stdout, proc.stderr, proc.returncode, concurrency, cpu)
