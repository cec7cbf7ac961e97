"""The live watch: time from the service's SUCCESS to the model in the scene (watched vs polled), in bpy 5.0,
and what a watch on a worker thread costs the main thread (pure Python work rate, watched / polled / alone).

The stand-in runs in its own process (`_watch_serve`, driven by JSON lines on its stdin), so its threads never
share a GIL with what is measured; it stamps SUCCESS with time.monotonic(), which is system-wide on Linux.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .common import BENCHMARK, KEY, ROOT, SCRIPTS, TIMEOUT, _die_with_parent, run_checked

SUCCESS_AFTER = (1.0, 4.0)  # seconds after the import starts: SUCCESS comes at a random moment in this span
WINDOW = 3.0  # seconds of main-thread work per window
TICK = 0.1  # seconds between progress updates of the watched task in the cost windows
SETTLE = 0.5  # seconds between starting the watch and the window: the handshake is not the steady state
CONDITIONS = ("alone", "watched", "polled")


def bench_watch(asset: Path, runs: tuple[int, int], tmp: Path) -> dict[str, Any]:
    """Run the bpy worker (latency runs, cost windows per condition); summarise."""
    work = tmp / "watch"
    work.mkdir(parents=True, exist_ok=True)
    spec = {"asset": str(asset), "runs": runs[0], "windows": runs[1], "out": str(tmp / "watch.json"), "seed": 10}
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(work / "user")}
    for var in ("TRIVERSE_API_KEY", "TRIVERSE_API_URL"):
        env.pop(var, None)
    load_start = os.getloadavg()
    cmd = [sys.executable, str(BENCHMARK), "_watch", json.dumps(spec)]
    run_checked(cmd, TIMEOUT["e2e"], tmp / "watch.log", env=env)
    result: dict[str, Any] = json.loads(Path(spec["out"]).read_text())
    result["loadavg"] = [load_start, os.getloadavg()]
    lat = result["latency_s"]
    result["ratio_polled_over_watched"] = statistics.median(lat["polled"]) / statistics.median(lat["watched"])
    for rates in (result["work_rate"], result["work_rate_cpu"]):
        for name in ("watched", "polled"):  # window k of a condition against window k of "alone" (same round)
            rates[f"{name}_over_alone"] = [x / a for x, a in zip(rates[name], rates["alone"], strict=True)]
    print(
        f"[watch] SUCCESS -> in scene: watched median {statistics.median(lat['watched']):.3f} s "
        f"(max {max(lat['watched']):.3f}), polled {statistics.median(lat['polled']):.3f} s "
        f"(max {max(lat['polled']):.3f}), import alone {statistics.median(lat['import_alone']):.3f} s; "
        f"main-thread work watched/alone {statistics.median(result['work_rate']['watched_over_alone']):.3f}, "
        f"polled/alone {statistics.median(result['work_rate']['polled_over_alone']):.3f}",
        flush=True,
    )
    return result


# -- the stand-in, in its own process ---------------------------------------------------------------


class _Standin:
    """The `_watch_serve` child: one JSON command per line on its stdin, one JSON answer per line."""

    def __init__(self, asset: str) -> None:
        cmd = [sys.executable, str(BENCHMARK), "_watch_serve", json.dumps({"asset": asset})]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     preexec_fn=_die_with_parent)  # fmt: skip
        self.base_url: str = self._answer()["base_url"]

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the stand-in exited ({self.proc.poll()})")
        return json.loads(line)  # type: ignore[no-any-return]

    def call(self, op: str, **kw: Any) -> dict[str, Any]:
        """Send one command, wait for its answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        """End the child (closing its stdin ends its loop)."""
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def worker_watch_serve(spec: dict[str, Any]) -> None:
    """(stand-in child) Serve tasks; add, tick, succeed and count on command; answers on stdout."""
    sys.path.insert(0, str(SCRIPTS))
    from websockets.server import ServerProtocol

    from standin_server import StandinServer

    sent = [0]
    send_text = ServerProtocol.send_text

    def counting(self: Any, *args: Any, **kw: Any) -> Any:
        sent[0] += 1  # every watch message the stand-in sends (update and finalized)
        return send_text(self, *args, **kw)

    ServerProtocol.send_text = counting  # type: ignore[method-assign]
    succeeded: dict[str, float] = {}
    asset = Path(spec["asset"])
    with StandinServer(api_key=KEY, record_watch=True) as srv:

        def succeed(task: str) -> None:
            succeeded[task] = time.monotonic()  # then visible at once: set_status only takes a lock
            srv.set_status(task, "SUCCESS")

        def tick(task: str, every: float) -> None:
            progress = 0
            while task not in succeeded:
                progress = progress % 99 + 1  # a change each time: the stand-in sends only changes
                srv.set_status(task, "RUNNING", progress)
                time.sleep(every)

        print(json.dumps({"base_url": srv.base_url}), flush=True)
        for line in sys.stdin:
            cmd = json.loads(line)
            op, task = cmd["op"], cmd.get("uuid", "")
            answer: dict[str, Any] = {}
            if op == "add":
                srv.add(task, asset, status=cmd["status"], progress=cmd.get("progress", 0))
            elif op == "succeed_after":
                threading.Timer(cmd["delay"], succeed, (task,)).start()
            elif op == "succeed":
                succeed(task)
            elif op == "tick":
                threading.Thread(target=tick, args=(task, cmd["every"]), daemon=True).start()
            elif op == "counts":
                answer = {
                    "succeeded_at": succeeded.get(task),
                    "status_requests": sum(r.path.endswith(f"/tasks/{task}") for r in srv.requests_for(task)),
                    "watches": len(srv.requests_for(f"/tasks/watch/{task}")),
                    "messages_sent": sent[0],
                }
            print(json.dumps(answer), flush=True)


# -- the measured process ---------------------------------------------------------------------------


def worker_watch(spec: dict[str, Any]) -> None:
    """(bpy) The extension loaded as the tests load it; latency runs, then main-thread cost windows."""
    import bpy  # noqa: I001 - addon_utils exists only once bpy is imported

    import addon_utils

    sys.path.insert(0, str(SCRIPTS))
    import build

    repo_dir = Path(os.environ["BLENDER_USER_RESOURCES"]) / "dev-repo"
    build.stage(repo_dir, link=True)
    prefs = bpy.context.preferences
    prefs.extensions.repos.new(name="Dev", module="dev", custom_directory=str(repo_dir), source="USER")
    module = "bl_ext.dev.triverse"
    addon_utils.enable(module, default_set=True)
    if module not in prefs.addons:
        raise SystemExit(f"{module} did not enable")
    try:
        import websocket  # installed by Blender from the extension's wheel (the bench venv lacks it)
    except ImportError:
        raise SystemExit("websocket-client is not importable after enabling the extension") from None
    prefs.system.use_online_access = True
    srv = _Standin(spec["asset"])
    try:
        addon = prefs.addons[module].preferences
        addon.api_key, addon.base_url, addon.use_library = KEY, srv.base_url, False
        out: dict[str, Any] = {"bpy": bpy.app.version_string, "websocket_client": websocket.__version__}
        out.update(_latency(bpy, srv, sys.modules[f"{module}.watch"], spec))
        out.update(_cost(srv, module, spec["windows"]))
    finally:
        srv.close()
    Path(spec["out"]).write_text(json.dumps(out))


@contextlib.contextmanager
def _socket_off(watch: Any, off: bool) -> Iterator[None]:
    """Make the add-on's watch poll (as it does when the socket cannot be used), for one import."""
    original = watch.wait_for_success
    if off:
        watch.wait_for_success = functools.partial(original, use_socket=False)
    try:
        yield
    finally:
        watch.wait_for_success = original


def _latency(bpy: Any, srv: _Standin, watch: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """SUCCESS -> operator's return, watched and polled; import_task on a finished task alone; rotating order."""
    rng = random.Random(spec["seed"])

    def once(mode: str) -> tuple[float, dict[str, Any]]:
        bpy.ops.wm.read_homefile(use_empty=True)
        task = str(uuidlib.uuid4())
        srv.call("add", uuid=task, status="SUCCESS" if mode == "import_alone" else "RUNNING", progress=50)
        if mode != "import_alone":
            srv.call("succeed_after", uuid=task, delay=rng.uniform(*SUCCESS_AFTER))
        with _socket_off(watch, mode == "polled"):
            started = time.monotonic()
            result = bpy.ops.triverse.import_task(task_uuid=task, wait=True, wait_timeout=60)
            ended = time.monotonic()
        if result != {"FINISHED"} or not bpy.data.objects:
            raise SystemExit(f"import_task returned {result} with {len(bpy.data.objects)} objects ({mode})")
        counts = srv.call("counts", uuid=task)
        if counts["watches"] != (0 if mode == "polled" else 1):  # as shipped, even a finished task is watched first
            raise SystemExit(f"a {mode} run opened {counts['watches']} watches")
        if mode == "import_alone":
            return ended - started, counts
        if counts["succeeded_at"] is None or not started < counts["succeeded_at"] < ended:
            raise SystemExit(f"SUCCESS was not set during the {mode} run: {counts}")
        return ended - counts["succeeded_at"], counts

    once("import_alone")  # warm-up, untimed: the glTF importer's modules load on first use
    modes = ("watched", "polled", "import_alone")
    times: dict[str, list[float]] = {m: [] for m in modes}
    requests: dict[str, list[int]] = {m: [] for m in modes}
    for i in range(spec["runs"]):
        for mode in modes[i % 3 :] + modes[: i % 3]:
            seconds, counts = once(mode)
            times[mode].append(seconds)
            requests[mode].append(counts["status_requests"])
    return {"latency_s": times, "latency_status_requests": requests}


def _work_unit() -> int:
    """Fixed pure-Python work (~0.1 ms here)."""
    total = 0
    for i in range(1000):
        total += i * i
    return total


def _window() -> tuple[float, float]:
    """Work units per wall second and per CPU second of this (the main) thread, over one window."""
    done = 0
    cpu = time.thread_time()
    started = time.perf_counter()
    end = started + WINDOW
    while time.perf_counter() < end:
        _work_unit()
        done += 1
    return done / (time.perf_counter() - started), done / (time.thread_time() - cpu)


def _cost(srv: _Standin, module: str, windows: int) -> dict[str, Any]:
    """Main-thread work rate alone, beside a watch over the socket, beside polling; rotating order."""
    import importlib

    watch = importlib.import_module(f"{module}.service.watch")
    client_mod = importlib.import_module(f"{module}.service.api")
    config = importlib.import_module(f"{module}.service.settings")
    settings = config.Settings(api_key=KEY, base_url=srv.base_url)
    rates: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    cpu_rates: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    watcher_cpu: dict[str, list[float]] = {c: [] for c in CONDITIONS[1:]}
    counts: dict[str, list[dict[str, Any]]] = {c: [] for c in CONDITIONS}

    def one(condition: str) -> None:
        task = str(uuidlib.uuid4())
        srv.call("add", uuid=task, status="RUNNING", progress=0)
        srv.call("tick", uuid=task, every=TICK)  # in every condition: the stand-in's own load is alike
        heard: list[Any] = []
        path: list[str] = []
        thread: threading.Thread | None = None
        client = client_mod.TriverseClient(settings)
        if condition != "alone":
            wait: Callable[[], Any] = functools.partial(
                watch.wait_for_success, client, task, 60 + WINDOW, heard.append,
                use_socket=condition == "watched", on_path=path.append,
            )  # fmt: skip
            thread = threading.Thread(target=wait, name=f"bench-{condition}", daemon=True)
            thread.start()
        time.sleep(SETTLE)
        clock = time.pthread_getcpuclockid(thread.ident) if thread is not None and thread.ident else None
        before = srv.call("counts", uuid=task)
        cpu = time.clock_gettime(clock) if clock is not None else 0.0
        wall_rate, cpu_rate = _window()
        if clock is not None:  # the watching thread's own CPU time in the window: what it could take
            watcher_cpu[condition].append((time.clock_gettime(clock) - cpu) / WINDOW)
        after = srv.call("counts", uuid=task)
        rates[condition].append(wall_rate)
        cpu_rates[condition].append(cpu_rate)
        srv.call("succeed", uuid=task)
        if thread is not None:
            thread.join(30)
            expected = "socket" if condition == "watched" else "poll"
            if thread.is_alive() or path != [expected]:
                raise SystemExit(f"the {condition} watch ended by {path or 'nothing'}, not {expected}")
        client.close()
        counts[condition].append({
            "status_requests": after["status_requests"] - before["status_requests"],
            "socket_messages": after["messages_sent"] - before["messages_sent"],
            "statuses_heard_whole_watch": len(heard),
        })  # fmt: skip

    for i in range(windows):
        for condition in CONDITIONS[i % 3 :] + CONDITIONS[: i % 3]:
            one(condition)
    return {
        "work_rate": rates,  # work units (a 1000-step Python loop) per wall second
        "work_rate_cpu": cpu_rates,  # per CPU second of the main thread
        "watcher_cpu_s_per_s": watcher_cpu,
        "window_counts": counts,
        "window_s": WINDOW,
        "tick_s": TICK,
    }
