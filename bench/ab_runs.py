#!/usr/bin/env python3
"""ab_runs.py - commands side by side on a loaded machine: each round runs every command once,
interleaved, the first command of a round rotating (A B, B A, ... or A B C, B C A, ...), each
as a child process into a fresh store, and records its wall time, its CPU time (user + system
of the child, from wait4) and the 1-minute load average when it started. Prints one JSON
line per run, then per command the medians and, against the first command, the per-round
ratios (median, min, max) of wall and CPU time.

usage: ab_runs.py [--rounds N] [--out FILE] NAME=COMMAND NAME=COMMAND ...
  COMMAND runs under `bash -c`; {db} in it is replaced by a store path that does not exist
  yet (removed after the run). Example:
    ab_runs.py --rounds 3 'cli=build/bin/ragcore ingest --db {db} --quiet c.jsonl' \\
                          'py=python3 -c "import ragcore; ragcore.open(\\"{db}\\").ingest(\\"c.jsonl\\")"'
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def run_one(name, cmd, work, rnd):
    db = os.path.join(work, f"db-{name}-{rnd}")
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    p = subprocess.Popen(["bash", "-c", cmd.replace("{db}", db)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    out, err = p.stdout.read(), p.stderr.read()
    p.returncode = os.waitstatus_to_exitcode(status)
    shutil.rmtree(db, ignore_errors=True)
    if p.returncode != 0:
        sys.exit(f"{name} failed ({p.returncode}): {err.decode(errors='replace')[-2000:]}")
    return {"name": name, "round": rnd, "wall_s": round(wall, 3),
            "cpu_s": round(ru.ru_utime + ru.ru_stime, 3), "user_s": round(ru.ru_utime, 3),
            "sys_s": round(ru.ru_stime, 3), "load1": load,
            "stdout_tail": out.decode(errors="replace")[-200:].strip()}


def summary(runs, names):
    s = {}
    for n in names:
        rs = [r for r in runs if r["name"] == n]
        s[n] = {"wall_med": statistics.median(r["wall_s"] for r in rs),
                "cpu_med": statistics.median(r["cpu_s"] for r in rs)}
    base = names[0]
    for n in names[1:]:
        for key in ("wall_s", "cpu_s"):
            ratios = []
            for rnd in sorted({r["round"] for r in runs}):
                a = [r[key] for r in runs if r["name"] == base and r["round"] == rnd]
                b = [r[key] for r in runs if r["name"] == n and r["round"] == rnd]
                if a and b and a[0] > 0:
                    ratios.append(b[0] / a[0])
            s[n][f"{key[:-2]}_ratio_vs_{base}"] = {
                "median": round(statistics.median(ratios), 4), "min": round(min(ratios), 4),
                "max": round(max(ratios), 4), "all": [round(x, 4) for x in ratios]}
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", help="write the runs and the summary as JSON here too")
    ap.add_argument("commands", nargs="+", help="NAME=COMMAND")
    args = ap.parse_args()
    cmds = []
    for c in args.commands:
        name, sep, cmd = c.partition("=")
        if not sep or not name or not cmd:
            ap.error(f"'{c}': expected NAME=COMMAND")
        cmds.append((name, cmd))
    names = [n for n, _ in cmds]
    work = tempfile.mkdtemp(prefix="ab-runs-")
    runs = []
    try:
        for rnd in range(args.rounds):
            k = rnd % len(cmds)
            for name, cmd in cmds[k:] + cmds[:k]:
                r = run_one(name, cmd, work, rnd)
                runs.append(r)
                print(json.dumps(r), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    s = summary(runs, names)
    print(json.dumps(s, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                       "commands": dict(cmds), "runs": runs, "summary": s}, f, indent=1)


if __name__ == "__main__":
    main()
