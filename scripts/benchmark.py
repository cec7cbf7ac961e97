"""Measure the add-on against plain tools: download speed, memory, end to end, batch, UI stalls, the watch.

    python3 scripts/benchmark.py            # full run (about 6-8 minutes here), writes docs/benchmarks/
    python3 scripts/benchmark.py --quick    # one run of each measure (about 2 minutes), writes build/benchmarks-quick/
    python3 scripts/benchmark.py --only e2e_defaults    # one measure, writes build/benchmarks-quick/
    python3 scripts/benchmark.py --only watch --merge-into docs/benchmarks    # ...and put it in the full report

Runs in its own environment, `.venv/bench` (bpy 5.0.1, matplotlib, psutil), made on first use through
`_bootstrap` like the project's other environments (TRIVERSE_BENCH_HERE=1 runs it in the current Python
instead, when that one has them). Everything is on loopback: the stand-in service
(`standin_server.py`) runs in its own process, so its Python never shares a GIL with what is measured.
The measures live in scripts/bench/ (one module each, `bench.common` for what they share):

1. throughput: `TriverseClient.download` (in this process) against `curl` (its own process, timed by its
   `%{time_total}`), same server process, for GLBs of 1, 10 and 170 MB made by Blender's exporter and
   padded with an unused buffer (cached in build/bench-assets/).
2. rss: peak RSS growth of a process that only downloads (/proc/self/clear_refs + VmHWM).
3. e2e: end to end in bpy 5.0, `bpy.ops.triverse.import_task` (library off) against curl +
   `import_scene.gltf`, padded 1 and 10 MB GLBs.
4. e2e_defaults: the same with the add-on's defaults (library on, in its default folder) on GLBs that
   are all mesh (1, 10, 170 MB), files on a tmpfs; fastest of N and the median of pair ratios.
5. batch: `scripts/batch_import.py` over 16 tasks answering after 300 ms, at --jobs 1, 4 and 8.
6. stall: the longest main-thread stall during a sidebar download (tests/ui/drive_ui.py under Xvfb).
7. watch: in bpy 5.0, the time from the service's SUCCESS to the model in the scene with `import_task(wait=True)`,
   watched over the WebSocket against polled (socket off), and the import alone; then what a watch on a worker
   thread costs the main thread (Python work rate beside a watch / beside polling, ÷ alone).

A/B pairs alternate which goes first and their ratio is taken pair by pair. MB = 10^6 bytes. Nothing
here passes or fails a test suite: targets are reported as met or not. Exit status 1 only when a
measure could not be taken at all.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import common
from bench.main import WORKERS, main

import _bootstrap

if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in WORKERS:
        WORKERS[sys.argv[1]](json.loads(sys.argv[2]))  # a child started by this script, in .venv/bench
        sys.stdout.flush()
        os._exit(0)  # bpy may crash at interpreter exit after an import; the work is done
    if os.environ.get("TRIVERSE_BENCH_HERE") != "1":  # "1": run in this interpreter (it has what is needed)
        _bootstrap.reexec_in(common.VENV)
    sys.exit(main())
