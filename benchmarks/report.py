#!/usr/bin/env python3
"""Markdown tables from the benchmarks' JSON record files (benchmarks/results/), for docs/kernels.md
and docs/performance.md.

usage: benchmarks/report.py kernels FILE.json   # memory-bound ops: time and fraction of copy bandwidth
       benchmarks/report.py conv FILE.json      # ours vs cuDNN, summed over a training step's convs
       benchmarks/report.py e2e DIR             # benchmarks/compare.sh's results: ours vs PyTorch
       benchmarks/report.py attention KERNELS.json TORCH.json   # our attention vs PyTorch's SDPA
       benchmarks/report.py variants DIR        # tools/gpu-variants.sh's builds side by side
       benchmarks/report.py junit FILE.xml      # a Catch2 JUnit report: counts and the failures' first lines

A file that cannot be read, or is not what the subcommand reads, is named in one line (exit status
1). e2e and variants leave such files out of the table and list them under it (exit status 1);
junit exits 1 on a failed or unreadable report and on one with no test cases.
"""
import glob
import json
import math
import os
import re
import signal
import sys
import xml.etree.ElementTree as ET

NUM = (int, float)
TYPE_NAMES = {str: "a string", NUM: "a number", bool: "true or false"}
KERNEL_HEADER = {"device": str, "date": str, "commit": str, "precision?": str, "tf32?": bool}
KERNEL_RECORD = {"setup": str, "op": str, "shape": str, "pass": str, "median_us": NUM}
E2E_RECORD = {"setup": str, "train_img_s?": NUM, "reverse_img_steps_s?": NUM, "peak_gib?": NUM, "first_step_s?": NUM}
# What each use of a record file reads: the tool that writes the file, and the keys as name: type. A
# dict as the type is a list of records with those keys; a name ending in '?' may be missing or null.
FILES = {
    "kernels": ("bench_kernels", {
        **KERNEL_HEADER, "copy_gbps": NUM, "runs": NUM,
        "records": {**KERNEL_RECORD, "bytes": NUM, "flops": NUM, "gbps": NUM, "copy_fraction": NUM}}),
    "conv": ("bench_conv", {
        "device": str, "date": str, "commit": str,
        "totals": {"setup": str, "variant": str, "us": NUM, "complete?": bool},
        "records": {"setup": str, "shape": str, "dir": str, "count": NUM, "variant": str, "in_step?": bool,
                    "median_us": NUM}}),
    "attention ours": ("bench_kernels", {**KERNEL_HEADER, "records": KERNEL_RECORD}),
    "attention torch": ("torch_attention", {
        "device": str, "date": str, "torch": str,
        "records": {"setup": str, "shape": str, "dtype": str, "fwd_ms": NUM, "bwd_ms": NUM}}),
    "variants": ("bench_kernels", {"records": KERNEL_RECORD}),
    "e2e ours": ("bench_train or bench_sample", {
        "tool": str, "device": str, "date": str, "commit": str, "records": E2E_RECORD}),
    "e2e torch": ("torch_twin", {"device": str, "date": str, "torch": str, "records": {**E2E_RECORD, "mode": str}}),
}


class Unusable(Exception):
    """A file that a subcommand cannot use; the message names it and says why, in one line."""


def mismatch(obj, spec, where=""):
    """What in OBJ does not fit SPEC (see FILES), in words, or None. A failed timing (a record with
    an 'error' and no numbers, from bench_kernels or bench_conv) is not checked: no table shows it."""
    if not isinstance(obj, dict):
        return f"{where[:-1]} is not an object" if where else "not a JSON object"
    for key, want in spec.items():
        name = key.rstrip("?")
        value = obj.get(name)
        if value is None:
            if key.endswith("?"):
                continue
            return f"no '{where}{name}'"
        if isinstance(want, dict):
            if not isinstance(value, list):
                return f"'{where}{name}' is not a list"
            for i, r in enumerate(value):
                if isinstance(r, dict) and "error" in r:
                    continue
                problem = mismatch(r, want, f"{where}{name}[{i}].")
                if problem:
                    return problem
        elif not isinstance(value, want):
            return f"'{where}{name}' is {json.dumps(value)[:30]}, not {TYPE_NAMES[want]}"
    return None


def load(path, use):
    """The JSON object in PATH, checked for what USE (a key of FILES) reads; raises Unusable."""
    tool, spec = FILES[use]
    try:
        with open(path, errors="replace") as f:  # bytes that are not UTF-8 then fail as JSON, with their place
            doc = json.load(f)
    except OSError as e:
        raise Unusable(f"{path}: {e.strerror}")
    except json.JSONDecodeError as e:
        raise Unusable(f"{path}: not valid JSON (line {e.lineno} col {e.colno})")
    problem = mismatch(doc, spec)
    if problem:
        raise Unusable(f"{path} is not a {tool} record file ({problem})")
    return doc


def finite(v):
    """Whether V is a number to show: not missing, null, NaN or infinite (JSON reads NaN and Infinity)."""
    return isinstance(v, NUM) and math.isfinite(v)


def fmt(v, spec="{:.2f}"):
    """V formatted with SPEC, or '-' where finite(V) is not."""
    return spec.format(v) if finite(v) else "-"


def ratio(a, b):
    """A / B as '1.23x', or '-' where either is not a positive number."""
    return f"{a / b:.2f}x" if finite(a) and finite(b) and a > 0 and b > 0 else "-"


def settings(doc):
    """bench_kernels' data precision and TF32 setting: without them bf16, f32 and TF32 tables look alike."""
    tf32 = {True: "on", False: "off"}.get(doc.get("tf32"), "not recorded")
    return f"precision {doc.get('precision') or 'not recorded'}, TF32 {tf32}"


def left_out(problems):
    """The files a table had to leave out, listed under it; the exit status (1 if any)."""
    if problems:
        print("\nLeft out:" + "".join("\n- " + p for p in problems))
    return 1 if problems else 0


def kernels(path):
    doc = load(path, "kernels")
    print(f"{doc['device']}, {doc['date'][:10]}, commit {doc['commit']}, {settings(doc)}; device-to-device copy "
          f"{fmt(doc['copy_gbps'], '{:.0f}')} GB/s (read + written); median of {doc['runs']} runs, L2 flushed.\n")
    print("| setup | op | pass | shape | us | GB/s | of copy |")
    print("|---|---|---|---|---:|---:|---:|")
    for r in doc["records"]:
        if "error" in r or r["flops"] or r["bytes"] < 8e6:  # memory-bound, large enough to matter
            continue
        if r["copy_fraction"] > 1.5:  # a backward that only hands its gradient on moves no bytes
            continue
        print(f"| {r['setup']} | {r['op']} | {r['pass']} | {r['shape']} | {fmt(r['median_us'], '{:.1f}')} | "
              f"{fmt(r['gbps'], '{:.0f}')} | {fmt(100 * r['copy_fraction'], '{:.0f}%')} |")


def conv(path):
    doc = load(path, "conv")
    print(f"{doc['device']}, {doc['date'][:10]}, commit {doc['commit']}; every conv of one training step "
          f"(forward, data and filter gradients, times uses per step), summed:\n")
    print("| setup | variant | ms per step | speed vs cuDNN |")
    print("|---|---|---:|---:|")
    # A total missing shapes (a variant that failed at some) is a lower bound: ">=", and no ratio.
    t = {(r["setup"], r["variant"]): (r["us"], r.get("complete", True)) for r in doc["totals"]}
    for (setup, variant), (us, complete) in t.items():
        kind = variant.rpartition("-")[2]  # ours-*, cudnn-*, measured-* (backend Measured's choice per shape)
        base, base_complete = t.get((setup, "cudnn-" + kind), (None, False))
        speed = "" if variant.startswith("cudnn") else ratio(base, us) if complete and base_complete else "-"
        print(f"| {setup} | {variant} | {'' if complete else '>= '}{fmt(us / 1e3)} | {speed} |")
    # Per precision: the step with the faster of ours and cuDNN at every shape (what a perfect
    # backend Measured would give), and where ours wins by more than 10% (what its rule must pick).
    us = {}
    for r in doc["records"]:
        if "error" not in r and r.get("in_step"):
            us.setdefault((r["setup"], r["shape"], r["dir"], r["count"]), {})[r["variant"]] = r["median_us"]
    for kind in ("tf32", "bf16"):
        ours, theirs = "ours-" + kind, "cudnn-" + kind
        best, wins = {}, []
        for (setup, shape, d, count), v in us.items():
            if ours in v and theirs in v:
                best[setup] = best.get(setup, 0) + count * min(v[ours], v[theirs])
                if v[ours] * 1.1 < v[theirs]:
                    wins.append(f"{setup} {shape} {d}: ours {v[ours]:.1f} us, cuDNN {v[theirs]:.1f} us")
        print(f"\n{kind}: the faster of ours and cuDNN per shape: " +
              ", ".join(f"{setup} {fmt(t / 1e3)} ms" for setup, t in best.items()))
        print(f"{kind}: ours faster by more than 10% ({len(wins)}):" + "".join("\n- " + w for w in wins))


def e2e(folder):
    """One row per (setup, engine configuration), then the issue's ratios (docs/performance.md)."""
    files = lambda pattern: glob.glob(os.path.join(folder, pattern))
    paths = sorted(files("bench_train-*.json") + files("bench_sample-*.json")) + files("torch_twin.json")
    if not paths:
        raise Unusable(f"no bench_train-*.json, bench_sample-*.json or torch_twin.json in {folder}")
    rows = {}  # (setup, engine) -> merged record
    meta, skipped = [], []
    for path in paths:
        twin = os.path.basename(path) == "torch_twin.json"
        try:
            doc = load(path, "e2e torch" if twin else "e2e ours")
        except Unusable as e:  # one bad file must not cost the others' rows
            skipped.append(str(e))
            continue
        if twin:
            meta.append(f"torch_twin: {doc['device']}, {doc['date']}, PyTorch {doc['torch']}")
        else:
            engine = "ours " + os.path.basename(path)[:-5].split("-", 1)[1]
            meta.append(f"{doc['tool']} {engine[5:]}: {doc['device']}, {doc['date']}, commit {doc['commit']}")
        for r in doc["records"]:
            rows.setdefault((r["setup"], "torch " + r["mode"] if twin else engine), {}).update(r)
    if not rows:  # every file left out, or none held a record
        if not skipped:
            raise Unusable(f"the record files in {folder} hold no records")
        return left_out(skipped)
    print("\n".join(meta) + "\n")
    print("| setup | engine | train img/s | reverse img-steps/s | peak GiB | first step s |")
    print("|---|---|---:|---:|---:|---:|")
    for (setup, engine), r in sorted(rows.items()):
        print(f"| {setup} | {engine} | {fmt(r.get('train_img_s'), '{:.0f}')} | "
              f"{fmt(r.get('reverse_img_steps_s'), '{:.0f}')} | {fmt(r.get('peak_gib'))} | "
              f"{fmt(r.get('first_step_s'), '{:.1f}')} |")

    def best(setup, key, prefixes):
        vals = [(r[key], e) for (s, e), r in rows.items()
                if s == setup and e.startswith(prefixes) and finite(r.get(key)) and r[key] > 0]
        return max(vals) if vals else (None, None)

    print("\n| setup | ratio | value | goal |\n|---|---|---:|---:|")
    for setup in sorted({s for s, _ in rows}):
        # Our f32 configurations (exact f32 or TF32) against fp32 eager; any of ours against compile.
        goals = [("f32 training vs PyTorch fp32 eager", "train_img_s", ("ours f32", "ours tf32"), "torch fp32", 2.0),
                 ("training vs torch.compile (bf16)", "train_img_s", ("ours bf16",), "torch compile", 1.5),
                 ("reverse step vs torch.compile", "reverse_img_steps_s", ("ours",), "torch compile", 2.0)]
        for label, key, ours, theirs, goal in goals:
            value, engine = best(setup, key, ours)
            ref, _ = best(setup, key, (theirs,))
            text = f"{ratio(value, ref)} ({engine})" if value and ref else "not measured"
            print(f"| {setup} | {label} | {text} | {goal}x |")
    return left_out(skipped)


def attention(ours_path, torch_path):
    """bench_kernels' "attention" records against torch_attention.py's, paired by setup and shape."""
    ours_doc, torch_doc = load(ours_path, "attention ours"), load(torch_path, "attention torch")
    print(f"ours: {ours_doc['device']}, {ours_doc['date'][:10]}, commit {ours_doc['commit']}, "
          f"{settings(ours_doc)}; PyTorch {torch_doc['torch']} SDPA: {torch_doc['device']}, {torch_doc['date'][:10]}. "
          "Milliseconds, medians.\n")
    ours = {(r["setup"], r["shape"], r["pass"]): r["median_us"] / 1e3
            for r in ours_doc["records"] if "error" not in r and r["op"] == "attention"}
    sdpa = {(r["setup"], r["shape"], r["dtype"]): r for r in torch_doc["records"]}
    print("| setup | shape (B x L x 3C, heads) | ours fwd | SDPA fp32 fwd | SDPA bf16 fwd | ours bwd | "
          "SDPA fp32 bwd | SDPA bf16 bwd | ours vs SDPA bf16, fwd+bwd |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    ms = lambda v: fmt(v, "{:.3f}")
    for setup, shape in dict.fromkeys((s, sh) for s, sh, _ in sdpa):
        f32, b16 = sdpa.get((setup, shape, "fp32"), {}), sdpa.get((setup, shape, "bf16"), {})
        of, ob = ours.get((setup, shape, "fwd")), ours.get((setup, shape, "bwd"))
        speed = ratio(b16["fwd_ms"] + b16["bwd_ms"], of + ob) if of is not None and ob is not None and b16 else "-"
        print(f"| {setup} | {shape} | {ms(of)} | {ms(f32.get('fwd_ms'))} | {ms(b16.get('fwd_ms'))} | {ms(ob)} | "
              f"{ms(f32.get('bwd_ms'))} | {ms(b16.get('bwd_ms'))} | {speed} |")


def variants(folder):
    """tools/gpu-variants.sh run's bench{round}_{name}.json: per op, setup, shape and pass the lowest
    median over the rounds of each variant, and each variant's time over the first's. Its .txt
    beside each is written even when the run failed, so a missing JSON is listed, not skipped."""
    found = [re.fullmatch(r"bench(\d+)_(.+)\.(json|txt)", os.path.basename(p))
             for p in glob.glob(os.path.join(folder, "bench*_*"))]
    runs = {(int(m[1]), m[2]) for m in found if m}
    if not runs:
        raise Unusable(f"no bench<round>_<variant>.json in {folder}")
    names = sorted({name for _, name in runs})
    best, skipped = {}, []
    for rnd in sorted({rnd for rnd, _ in runs}):
        for name in names:
            try:
                doc = load(os.path.join(folder, f"bench{rnd}_{name}.json"), "variants")
            except Unusable as e:
                skipped.append(str(e))
                continue
            for r in doc["records"]:
                if "error" not in r:
                    cell = best.setdefault((r["op"], r["setup"], r["shape"], r["pass"]), {})
                    cell[name] = min(cell.get(name, math.inf), r["median_us"])
    print("Microseconds, the lowest median of the rounds; in brackets the time over " + names[0] + "'s.\n")
    print("| op | setup | shape | pass | " + " | ".join(names) + " |")
    print("|---|---|---|---|" + "---:|" * len(names))
    for (op, setup, shape, ps), cell in best.items():
        base = cell.get(names[0])
        cols = [fmt(cell[n], "{:.1f}") + (f" ({fmt(cell[n] / base)})" if base and n != names[0] else "")
                if n in cell else "-" for n in names]
        print(f"| {op} | {setup} | {shape} | {ps} | " + " | ".join(cols) + " |")
    return left_out(skipped)


def junit(path):
    """"P passed, F failed of N test cases" and the failures' first lines; exit status 1 on a failure,
    on no test cases at all, or on an unreadable file (a crashed test binary leaves none)."""
    try:
        cases = ET.parse(path).getroot().iter("testcase")
    except Exception as e:
        print(f"unreadable JUnit file ({e})")
        return 1
    names, failed = {}, []
    for c in cases:
        name = c.get("name")
        problems = c.findall("failure") + c.findall("error")
        names[name] = names.get(name, False) or bool(problems)
        for p in problems:
            # Catch2's text: FAILED: / the check / [with expansion: / value] / messages (CAPTURE) / at file:line
            lines = [l.strip() for l in (p.text or "").splitlines() if l.strip()]
            where = next((l[3:] for l in lines if l.startswith("at ")), "")
            if "with expansion:" in lines:
                i = lines.index("with expansion:")
                got, start = " ".join(lines[i + 1:i + 2]), i + 2  # no value in a text cut short
            else:
                got, start = "", 2
            info = "; ".join(l for l in lines[start:] if not l.startswith("at "))
            line = f"    {name}: {p.get('type', '')}({(p.get('message') or '')[:80]})"
            line += f" got {got[:50]}" if got else ""
            line += f" [{info[:80]}]" if info else ""
            line += f" at {where}" if where else ""
            if line not in failed:
                failed.append(line)
    n, f = len(names), sum(names.values())
    print(f"{n - f} passed, {f} failed of {n} test cases (sections count separately)")
    if n == 0:
        print("    no test cases in the report (a test spec that matches nothing?)")
    for line in failed[:12]:
        print(line)
    return 1 if f or n == 0 else 0


COMMANDS = {"kernels": kernels, "conv": conv, "e2e": e2e, "attention": attention, "variants": variants, "junit": junit}

if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `report.py ... | head` ends quietly, no traceback
    args = sys.argv[1:]
    if args[:1] in (["-h"], ["--help"]):
        print(__doc__.strip())
        sys.exit(0)
    if not args or args[0] not in COMMANDS or len(args) != (3 if args[0] == "attention" else 2):
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(COMMANDS[args[0]](*args[1:]))
    except Unusable as e:
        sys.exit(f"report.py: {e}")
