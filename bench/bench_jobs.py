#!/usr/bin/env python3
"""bench P1 / P2, local and Slurm job start: JupyterLab as a uws job against it started bare.

P1 (local): ``PUT /workspaces/<id>/start/`` until the API (``GET /jobs/<id>/``) says ``running``
with ``job_details.current_job_details.connection_details`` (what a UWS client waits for),
against ``jupyterhub-singleuser`` started directly as the same account, in the same directory,
with the same environment, until it answers. Goal <= 1.3x. Also printed: the time until
JupyterLab answers through the proxy. Both sides are polled every 50 ms; the uws side from
when the hub's progress stream says the server is ready, on a grid from the start (uws_start).

P2 (Slurm): the same through a real Slurm job, against ``sbatch`` of a script that runs the same
server (``sbatch`` -> RUNNING + server start) until it answers; both ways into the cluster: its
commands (resource ``slurm``) and its slurmrestd (``slurm-rest``, the test hub's resources).
Goal <= 1.05x.

Rounds alternate uws and bare starts so both see the same machine. Needs root and, for P2, the
project's Slurm (scripts/slurm.sh start). Short form (tests/e2e/test_benches.py): ``--quick`` (one round,
no warm-up start; with ``--only local`` where there is no Slurm).

    python bench/bench_jobs.py [--rounds 5] [--only local|slurm|slurm-rest]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
from benchnames import heading  # noqa: E402
from hubtest import HubProcess, ensure_system_user, free_port  # noqa: E402

USER = "uwst-bench"
#: the test hub's Slurm resources: the cluster through its commands, and its slurmrestd
SLURM = ("slurm", "slurm-rest")


def next_poll(grid_t0: float | None) -> None:
    """Sleep until the next poll: 50 ms on, or, given the start's time, until the next
    multiple of 50 ms from it (a client that had polled every 50 ms since the start)."""
    if grid_t0 is None:
        time.sleep(0.05)
    else:
        time.sleep(0.05 - (time.perf_counter() - grid_t0) % 0.05)


def wait_answering(
    url: str,
    headers: dict | None = None,
    timeout: float = 180,
    gone: Callable[[], str | None] | None = None,
    grid_t0: float | None = None,
) -> float:
    """Poll ``url`` every 50 ms until the server's own /api answers; ``gone`` (checked about
    once a second) says why the server can no longer answer, to fail at once with it."""
    deadline = time.perf_counter() + timeout
    http = requests.Session()  # one kept-alive connection, as a client polling would keep
    next_check = time.perf_counter() + 1
    while time.perf_counter() < deadline:
        if gone is not None and time.perf_counter() >= next_check:
            next_check = time.perf_counter() + 1
            why = gone()
            if why:
                raise RuntimeError(f"{url} will not answer: {why}")
        try:  # the server's own /api answer (not the hub's "starting" page)
            r = http.get(url, headers=headers, timeout=2, allow_redirects=False)
            if (
                r.status_code == 200
                and r.headers.get("Content-Type", "").startswith("application/json")
                and "version" in r.json()
            ):
                return time.perf_counter()
        except (requests.RequestException, ValueError):
            pass
        next_poll(grid_t0)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def wait_api_running(
    api: str, headers: dict, job_id: int, timeout: float = 180, grid_t0: float | None = None
) -> tuple[float, dict]:
    """What a UWS client waits for: the job says ``running`` and tells where to connect."""
    deadline = time.perf_counter() + timeout
    job: dict = {}
    http = requests.Session()
    while time.perf_counter() < deadline:
        try:
            r = http.get(f"{api}/jobs/{job_id}/", headers=headers, timeout=10)
            if r.status_code == 200:
                job = r.json()["data"]["jobs"][0]
                current = (job.get("job_details") or {}).get("current_job_details") or {}
                if job["status"] == "running" and current.get("connection_details"):
                    return time.perf_counter(), job
                if job["status"] in ("failed", "complete"):
                    raise RuntimeError(f"job {job_id} ended while starting: {job}")
        except (requests.RequestException, ValueError):
            pass
        next_poll(grid_t0)
    raise RuntimeError(f"job {job_id} not running with connection details in {timeout}s: {job}")


def wait_hub_ready(hub: HubProcess, headers: dict, server: str, timeout: float = 180) -> None:
    """Until the hub's progress stream for the server (server-sent events, pushed by the
    hub: nothing is polled meanwhile) says it is ready; fail with its message if it fails.
    (The start request can return before the hub has taken the spawn: the stream is then
    404 or 400 "not starting" for a moment, and is asked again.)"""
    url = f"{hub.url}/hub/api/users/{USER}/servers/{server}/progress"
    deadline = time.perf_counter() + timeout
    while True:
        with requests.get(url, headers=headers, stream=True, timeout=30) as r:
            if r.status_code in (400, 404) and time.perf_counter() < deadline:
                time.sleep(0.05)
                continue
            r.raise_for_status()
            for line in r.iter_lines(decode_unicode=True):
                if time.perf_counter() > deadline:
                    break
                if not line or not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if event.get("failed"):
                    raise RuntimeError(f"{server} failed to start: {event.get('message')}")
                if event.get("ready"):
                    return
        raise RuntimeError(f"{server}: not ready within {timeout} s (the hub's progress stream)")


def uws_start(hub: HubProcess, token: str, ws_id: int, resource: str) -> tuple[float, float, dict]:
    """Start a job; return the seconds until the API says it runs (with connection details),
    the seconds until JupyterLab answers through the proxy, and the job record.

    The API and JupyterLab through the proxy are polled, each every 50 ms on a grid counted
    from the start (as a client polling every 50 ms since the start would see them; the bare
    server is polled every 50 ms), from the moment the hub's progress stream says the server
    is ready: the job is recorded as running, and routed, only after that, so nothing earlier
    is missed, and the start is not slowed by a measuring client asking 40 times a second for
    its whole length (it was: about 0.35 s of the hub's CPU per start, on the two cores
    JupyterLab starts on, where the bare start is polled on a closed port)."""
    api = f"{hub.url}/services/uws/api"
    h = {"Authorization": f"token {token}"}
    t0 = time.perf_counter()
    r = requests.put(
        f"{api}/workspaces/{ws_id}/start/",
        headers=h,
        json={"job_type": "jupyter_lab", "resource": resource},
        timeout=120,
    )
    r.raise_for_status()
    job_id = r.json()["data"]["job"]["id"]
    wait_hub_ready(hub, h, f"job-{job_id}")
    with ThreadPoolExecutor(2) as pool:  # both at once, on the grid of 50 ms from the start
        api_f = pool.submit(wait_api_running, api, h, job_id, grid_t0=t0)
        proxy_f = pool.submit(wait_answering, f"{hub.url}/user/{USER}/job-{job_id}/api", grid_t0=t0)
        t_api, job = api_f.result()
        t_proxy = proxy_f.result()
    conn = job["job_details"]["current_job_details"]["connection_details"]
    assert conn["url_path"].startswith(f"/user/{USER}/job-{job_id}/"), conn
    return t_api - t0, t_proxy - t0, job


def uws_stop(hub: HubProcess, token: str, job_id: int) -> None:
    api = f"{hub.url}/services/uws/api"
    h = {"Authorization": f"token {token}"}
    requests.put(f"{api}/jobs/{job_id}/stop/", headers=h, timeout=60)
    for _ in range(240):
        if requests.get(f"{api}/jobs/{job_id}/", headers=h, timeout=30).json()["data"]["jobs"][0][
            "status"
        ] in ("complete", "failed"):
            return
        time.sleep(0.25)


def server_env(job: dict) -> dict[str, str]:
    """The environment the hub gave the job's server (read from /proc), to start it bare."""
    out = subprocess.run(
        ["pgrep", "-f", "jupyterhub-singleuser"], capture_output=True, text=True
    ).stdout.split()
    for pid in out:
        try:
            raw = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        env = dict(kv.split("=", 1) for kv in raw.decode(errors="replace").split("\0") if "=" in kv)
        if env.get("UWS_JOB_ID") == str(job["id"]):
            return env
    raise RuntimeError("could not read the job server's environment")


def bare_env(env: dict[str, str], port: int, host: str = "127.0.0.1") -> dict[str, str]:
    prefix = f"/user/{USER}/bare-{port}/"
    return {
        **env,
        "JUPYTERHUB_SERVICE_URL": f"http://{host}:{port}{prefix}",
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
    }


def bare_local(env: dict[str, str], cwd: str) -> float:
    port = free_port()
    e = bare_env(env, port)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        ["runuser", "-u", USER, "--", "jupyterhub-singleuser"],
        env=e,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        t1 = wait_answering(
            f"http://127.0.0.1:{port}{e['JUPYTERHUB_SERVICE_PREFIX']}api",
            gone=lambda: None if proc.poll() is None else f"it exited {proc.returncode}",
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    return t1 - t0


def bare_slurm(env: dict[str, str], cwd: str) -> float:
    """``sbatch`` of the server; one more try, on another port, if the one picked was taken
    before the server could bind it (the server then exits at once: ``port_retries = 0``)."""
    try:
        return bare_slurm_once(env, cwd)
    except PortTaken as err:
        print(f"warning: the bare server's port was taken; once more: {err}", file=sys.stderr)
        return bare_slurm_once(env, cwd)


class PortTaken(RuntimeError):
    pass


def bare_slurm_once(env: dict[str, str], cwd: str) -> float:
    port = free_port()
    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip()
    e = bare_env(env, port, host)
    exports = {
        k: v
        for k, v in e.items()
        if k.startswith(("JUPYTERHUB_", "PATH", "HOME", "USER", "UWS_", "MEM_", "CPU_"))
    }
    script = "#!/bin/bash\nsrun jupyterhub-singleuser\n"
    log = Path(cwd) / f".bare-{port}.log"  # the job's output, shown if it never answers
    t0 = time.perf_counter()
    out = subprocess.run(
        [
            "runuser",
            "-u",
            USER,
            "--",
            "sbatch",
            "--parsable",
            f"--chdir={cwd}",
            f"--output={log}",
            "--cpus-per-task=1",
            "--mem=2048M",
            "--partition=debug",
            "--export=" + ",".join(exports),
        ],
        input=script,
        env=exports,
        capture_output=True,
        text=True,
        check=True,
    )
    slurm_id = out.stdout.strip().split(";")[0]

    def gone() -> str | None:
        state = slurm_state(slurm_id)
        if state in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", ""):
            return None
        return f"Slurm job {slurm_id} is {state}"

    try:
        t1 = wait_answering(f"http://{host}:{port}{e['JUPYTERHUB_SERVICE_PREFIX']}api", gone=gone)
    except RuntimeError as err:
        report = slurm_report(slurm_id, log)
        kind = PortTaken if "already in use" in report else RuntimeError
        raise kind(f"{err}\n{report}") from None
    finally:
        subprocess.run(["scancel", slurm_id])
        wait_slurm_idle()
        log.unlink(missing_ok=True)  # (a failure's report has read it)
    return t1 - t0


def slurm_state(slurm_id: str) -> str:
    """The job's state as its controller says it, ended ones too; "" while it cannot be read."""
    return subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", slurm_id, "-o", "%T"], capture_output=True, text=True
    ).stdout.strip()


def slurm_report(slurm_id: str, log: Path) -> str:
    """What a failed bare start leaves to read: Slurm's view of the job, the node, its output."""
    show = subprocess.run(["scontrol", "show", "job", slurm_id], capture_output=True, text=True)
    nodes = subprocess.run(["sinfo", "-h", "-o", "%P %T %E"], capture_output=True, text=True)
    queue = subprocess.run(["squeue", "-h"], capture_output=True, text=True)
    try:
        tail = log.read_text(errors="replace")[-3000:]
    except OSError as err:
        tail = f"(no output: {err})"
    return (
        f"scontrol show job {slurm_id}:\n{show.stdout}{show.stderr}\n"
        f"sinfo:\n{nodes.stdout}\nsqueue:\n{queue.stdout}\n"
        f"the job's output:\n{tail}"
    )


def settle(resource: str, offset: float) -> None:
    """Before a Slurm start: the node idle, then a random part of a second. slurmctld starts
    new jobs on its one-second background pass, so a start waits 0-1 s for it depending on
    when in the second it is submitted; the waits above end just after such a pass (the node
    turns idle there), which would make every start wait almost the whole second. A uniform
    offset (the same for a round's two starts) gives uws and bare starts the same wait."""
    if resource in SLURM:
        wait_slurm_idle()
        time.sleep(offset)


def wait_slurm_idle(timeout: float = 60) -> None:
    """Let a cancelled job finish leaving the node — out of the queue, and the node idle again
    (a job step's end can keep it busy a little longer) — so every start finds the same
    cluster: one submitted while the node is still busy waits for Slurm's next scheduling
    pass, up to a second or two, whichever way it was started."""
    deadline = time.time() + timeout

    def busy() -> bool:
        queue = subprocess.run(["squeue", "-h", "-u", USER], capture_output=True, text=True)
        nodes = subprocess.run(
            ["sinfo", "-h", "-p", "debug", "-o", "%T"], capture_output=True, text=True
        )
        states = set(nodes.stdout.split())
        return bool(queue.stdout.strip()) or not states <= {"idle"}

    while busy():
        if time.time() > deadline:
            print(f"warning: Slurm still busy after {timeout:.0f} s; going on", file=sys.stderr)
            return
        time.sleep(0.2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", choices=["local", *SLURM])
    ap.add_argument(
        "--quick", action="store_true", help="short form (tests): 1 round, no warm-up start"
    )
    args = ap.parse_args()
    if args.quick:
        args.rounds = 1
    ensure_system_user("uwst-slurmread")  # reads the queue through slurmrestd (hub_config.py)
    hub = HubProcess(name="benchjobs").start()
    results = {}
    try:
        token = hub.token_for(USER)
        h = {"Authorization": f"token {token}"}
        ws = requests.post(
            f"{hub.url}/services/uws/api/workspaces/",
            headers=h,
            json={"name": "bench", "description": "d"},
            timeout=60,
        ).json()["data"]["workspace"]
        cwd = str(hub.root / USER / str(ws["id"]))
        for resource in ["local", *SLURM] if not args.only else [args.only]:
            # warm up (imports cached, Slurm scheduled once) and take the server's environment;
            # not in the short form (its one round starts the uws job first, then bare)
            env: dict[str, str] = {}
            if not args.quick:
                _, _, job = uws_start(hub, token, ws["id"], resource)
                env = server_env(job)
                uws_stop(hub, token, job["id"])
                if resource in SLURM:
                    wait_slurm_idle()
            api_times, proxy_times, bare_times = [], [], []
            bare = bare_local if resource == "local" else bare_slurm
            for i in range(args.rounds):
                offset = random.uniform(0.0, 1.0)  # the same for both starts of a round
                if i % 2:  # alternate which goes first
                    settle(resource, offset)
                    bare_times.append(bare(env, cwd))
                settle(resource, offset)
                t_api, t_proxy, job = uws_start(hub, token, ws["id"], resource)
                api_times.append(t_api)
                proxy_times.append(t_proxy)
                env = server_env(job)
                uws_stop(hub, token, job["id"])
                if resource in SLURM:
                    wait_slurm_idle()
                if not i % 2:
                    settle(resource, offset)
                    bare_times.append(bare(env, cwd))
            results[resource] = (api_times, proxy_times, bare_times)
    finally:
        hub.stop()
        hub.cleanup()
    names = {
        "local": ("P1", "bare jupyterhub-singleuser", 1.3),
        "slurm": ("P2", "sbatch + jupyterhub-singleuser", 1.05),
        "slurm-rest": ("P2", "sbatch + jupyterhub-singleuser", 1.05),
    }

    def row(values: list[float]) -> str:
        return f"median {statistics.median(values):6.2f} s   (all: {', '.join(f'{x:.2f}' for x in values)})"

    for resource, (a, p, b) in results.items():
        number, base, goal = names[resource]
        ma, mp, mb = statistics.median(a), statistics.median(p), statistics.median(b)
        note = " (short form: no warm-up, figures indicative only)" if args.quick else ""
        way = {"slurm": ", the commands", "slurm-rest": ", through slurmrestd"}.get(resource, "")
        print(heading(number, f"{args.rounds} rounds{way}{note}"))
        print(f"  uws, API says running with connection details : {row(a)}")
        print(f"  uws, JupyterLab answering through the proxy    : {row(p)}")
        print(f"  bare, JupyterLab answering ({base}): {row(b)}")
        print(f"  ratio: {ma / mb:.2f}   (API running / bare; goal <= {goal})")
        print(f"  ratio: {mp / mb:.2f}   (answering through the proxy / bare)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
