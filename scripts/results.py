"""Where benchmark scripts keep what they measured: one JSON file per benchmark under benchmarks/results/, with
the machine it ran on, the date and the command, so that every figure in the README can be traced to a run and
rerun (scripts/readme_tables.py prints the README's tables from these files)."""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess


def machine_description() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    compiler = subprocess.run(["cc", "-dumpfullversion"], capture_output=True, text=True).stdout.strip()
    return {"cpu": model, "cpus": os.cpu_count(), "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "cc": compiler}


def write_results(path: str, data: dict, command: str) -> None:
    # the command that reproduces the results, wherever this run wrote them (a run to check the machine's noise
    # first writes elsewhere, and is copied into benchmarks/results/ when it is worth keeping)
    command = re.sub(r"\s*--output(?:=|\s+)\S+", "", command)
    document = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                "command": f"python scripts/{os.path.basename(__import__('sys').argv[0])} {command}".strip(),
                "machine": machine_description(), **data}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(document, handle, indent=1)
        handle.write("\n")
    print(f"results written to {os.path.relpath(path)}")


def read_results(path: str) -> dict:
    with open(path) as handle:
        return json.load(handle)
