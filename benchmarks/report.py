#!/usr/bin/env python3
"""Markdown tables from bench_kernels / bench_conv JSON (benchmarks/results/), for docs/kernels.md.

usage: benchmarks/report.py kernels FILE.json   # memory-bound ops: time and fraction of copy bandwidth
       benchmarks/report.py conv FILE.json      # ours vs cuDNN, summed over a training step's convs
       benchmarks/report.py e2e DIR             # benchmarks/compare.sh's results: ours vs PyTorch
       benchmarks/report.py attention KERNELS.json TORCH.json   # our attention vs PyTorch's SDPA
       benchmarks/report.py variants DIR        # tools/gpu-variants.sh's builds side by side
       benchmarks/report.py junit FILE.xml      # a Catch2 JUnit report: counts and the failures' first lines
"""
import glob
import json
import os
import sys
import xml.etree.ElementTree as ET


def kernels(doc):
    print(f"{doc['device']}, {doc['date'][:10]}, commit {doc['commit']}; device-to-device copy "
          f"{doc['copy_gbps']:.0f} GB/s (read + written); median of {doc['runs']} runs, L2 flushed.\n")
    print("| setup | op | pass | shape | us | GB/s | of copy |")
    print("|---|---|---|---|---:|---:|---:|")
    for r in doc["records"]:
        if "median_us" not in r or r["flops"] or r["bytes"] < 8e6:  # memory-bound, large enough to matter
            continue
        if r["copy_fraction"] > 1.5:  # a backward that only hands its gradient on moves no bytes
            continue
        print(f"| {r['setup']} | {r['op']} | {r['pass']} | {r['shape']} | {r['median_us']:.1f} | "
              f"{r['gbps']:.0f} | {100 * r['copy_fraction']:.0f}% |")


def conv(doc):
    print(f"{doc['device']}, {doc['date'][:10]}, commit {doc['commit']}; every conv of one training step "
          f"(forward, data and filter gradients, times uses per step), summed:\n")
    print("| setup | variant | ms per step | speed vs cuDNN |")
    print("|---|---|---:|---:|")
    # A total missing shapes (a variant that failed at some) is a lower bound: ">=", and no ratio.
    t = {(r["setup"], r["variant"]): (r["us"], r.get("complete", True)) for r in doc["totals"]}
    for (setup, variant), (us, complete) in t.items():
        kind = variant.split("-")[1]  # ours-*, cudnn-*, measured-* (backend Measured's choice per shape)
        base, base_complete = t.get((setup, "cudnn-" + kind), (0, False))
        ratio = base / us if complete and base_complete and us > 0 and not variant.startswith("cudnn") else None
        print(f"| {setup} | {variant} | {'' if complete else '>= '}{us / 1e3:.2f} | {f'{ratio:.2f}x' if ratio else ''} |")
    # Per precision: the step with the faster of ours and cuDNN at every shape (what a perfect
    # backend Measured would give), and where ours wins by more than 10% (what its rule must pick).
    us = {}
    for r in doc["records"]:
        if r.get("in_step") and "median_us" in r:
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
              ", ".join(f"{setup} {t / 1e3:.2f} ms" for setup, t in best.items()))
        print(f"{kind}: ours faster by more than 10% ({len(wins)}):" + "".join("\n- " + w for w in wins))


def e2e(folder):
    """One row per (setup, engine configuration), then the issue's ratios (docs/performance.md)."""
    rows = {}  # (setup, engine) -> merged record
    meta = []
    for path in sorted(glob.glob(os.path.join(folder, "bench_train-*.json")) +
                       glob.glob(os.path.join(folder, "bench_sample-*.json"))):
        doc = json.load(open(path))
        engine = "ours " + os.path.basename(path)[:-5].split("-", 1)[1]
        meta.append(f"{doc['tool']} {engine[5:]}: {doc['device']}, {doc['date']}, commit {doc['commit']}")
        for r in doc["records"]:
            rows.setdefault((r["setup"], engine), {}).update(r)
    twin = os.path.join(folder, "torch_twin.json")
    if os.path.exists(twin):
        doc = json.load(open(twin))
        meta.append(f"torch_twin: {doc['device']}, {doc['date']}, PyTorch {doc['torch']}")
        for r in doc["records"]:
            rows.setdefault((r["setup"], "torch " + r["mode"]), {}).update(r)
    print("\n".join(meta) + "\n")
    print("| setup | engine | train img/s | reverse img-steps/s | peak GiB | first step s |")
    print("|---|---|---:|---:|---:|---:|")
    num = lambda r, k, f: f.format(r[k]) if r.get(k) is not None else "-"
    for (setup, engine), r in sorted(rows.items()):
        print(f"| {setup} | {engine} | {num(r, 'train_img_s', '{:.0f}')} | {num(r, 'reverse_img_steps_s', '{:.0f}')} | "
              f"{num(r, 'peak_gib', '{:.2f}')} | {num(r, 'first_step_s', '{:.1f}')} |")

    def best(setup, key, prefixes):
        vals = [(r[key], e) for (s, e), r in rows.items() if s == setup and e.startswith(prefixes) and r.get(key)]
        return max(vals) if vals else (None, None)

    print("\n| setup | ratio | value | goal |\n|---|---|---:|---:|")
    for setup in sorted({s for s, _ in rows}):
        # Our f32 configurations (exact f32 or TF32) against fp32 eager; any of ours against compile.
        goals = [("f32 training vs PyTorch fp32 eager", "train_img_s", ("ours f32", "ours tf32"), "torch fp32", 2.0),
                 ("training vs torch.compile (bf16)", "train_img_s", ("ours bf16",), "torch compile", 1.5),
                 ("reverse step vs torch.compile", "reverse_img_steps_s", ("ours",), "torch compile", 2.0)]
        for label, key, ours, theirs, goal in goals:
            value, engine = best(setup, key, ours)
            ref = rows.get((setup, theirs), {}).get(key)
            ratio = f"{value / ref:.2f}x ({engine})" if value and ref else "not measured"
            print(f"| {setup} | {label} | {ratio} | {goal}x |")


def attention(ours_doc, torch_doc):
    """bench_kernels' "attention" records against torch_attention.py's, paired by setup and shape."""
    print(f"ours: {ours_doc['device']}, {ours_doc['date'][:10]}, commit {ours_doc['commit']}; PyTorch "
          f"{torch_doc['torch']} SDPA: {torch_doc['device']}, {torch_doc['date'][:10]}. Milliseconds, medians.\n")
    ours = {(r["setup"], r["shape"], r["pass"]): r["median_us"] / 1e3
            for r in ours_doc["records"] if r["op"] == "attention" and "median_us" in r}
    sdpa = {(r["setup"], r["shape"], r["dtype"]): r for r in torch_doc["records"]}
    print("| setup | shape (B x L x 3C, heads) | ours fwd | SDPA fp32 fwd | SDPA bf16 fwd | ours bwd | "
          "SDPA fp32 bwd | SDPA bf16 bwd | ours vs SDPA bf16, fwd+bwd |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    fmt = lambda v: f"{v:.3f}" if v is not None else "-"
    for setup, shape in dict.fromkeys((s, sh) for s, sh, _ in sdpa):
        f32, b16 = sdpa.get((setup, shape, "fp32"), {}), sdpa.get((setup, shape, "bf16"), {})
        of, ob = ours.get((setup, shape, "fwd")), ours.get((setup, shape, "bwd"))
        ratio = (b16["fwd_ms"] + b16["bwd_ms"]) / (of + ob) if of and ob and b16 else None
        print(f"| {setup} | {shape} | {fmt(of)} | {fmt(f32.get('fwd_ms'))} | {fmt(b16.get('fwd_ms'))} | {fmt(ob)} | "
              f"{fmt(f32.get('bwd_ms'))} | {fmt(b16.get('bwd_ms'))} | {f'{ratio:.2f}x' if ratio else '-'} |")


def variants(folder):
    """tools/gpu-variants.sh run's bench{round}_{name}.json: per op, setup, shape and pass the lowest
    median over the rounds of each variant, and each variant's time over the first's."""
    best, names = {}, []
    for path in sorted(glob.glob(os.path.join(folder, "bench*_*.json"))):
        name = os.path.basename(path)[:-5].split("_", 1)[1]
        names += [name] if name not in names else []
        for r in json.load(open(path))["records"]:
            if "median_us" in r:
                key = (r["op"], r["setup"], r["shape"], r["pass"])
                cell = best.setdefault(key, {})
                cell[name] = min(cell.get(name, float("inf")), r["median_us"])
    print("Microseconds, the lowest median of the rounds; in brackets the time over " + names[0] + "'s.\n")
    print("| op | setup | shape | pass | " + " | ".join(names) + " |")
    print("|---|---|---|---|" + "---:|" * len(names))
    for (op, setup, shape, ps), cell in best.items():
        base = cell.get(names[0])
        cols = [f"{cell[n]:.1f}" + (f" ({cell[n] / base:.2f})" if base and n != names[0] else "") if n in cell else "-"
                for n in names]
        print(f"| {op} | {setup} | {shape} | {ps} | " + " | ".join(cols) + " |")


def junit(path):
    """"P passed, F failed of N test cases" and the failures' first lines; exit status 1 on a failure
    or an unreadable file (a crashed test binary leaves none)."""
    try:
        cases = ET.parse(path).getroot().iter("testcase")
    except Exception as e:
        print(f"unreadable JUnit file ({e})")
        sys.exit(1)
    names, failed = {}, []
    for c in cases:
        name = c.get("name")
        problems = c.findall("failure") + c.findall("error")
        names[name] = names.get(name, False) or bool(problems)
        for p in problems:
            # Catch2's text: FAILED: / the check / [with expansion: / value] / messages (CAPTURE) / at file:line
            lines = [l.strip() for l in (p.text or "").splitlines() if l.strip()]
            where = next((l[3:] for l in lines if l.startswith("at ")), "")
            got = lines[lines.index("with expansion:") + 1] if "with expansion:" in lines else ""
            start = lines.index(got) + 1 if got else 2
            info = "; ".join(l for l in lines[start:] if not l.startswith("at "))
            line = f"    {name}: {p.get('type', '')}({(p.get('message') or '')[:80]})"
            line += f" got {got[:50]}" if got else ""
            line += f" [{info[:80]}]" if info else ""
            line += f" at {where}"
            if line not in failed:
                failed.append(line)
    n, f = len(names), sum(names.values())
    print(f"{n - f} passed, {f} failed of {n} test cases (sections count separately)")
    for line in failed[:12]:
        print(line)
    sys.exit(1 if f else 0)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("kernels", "conv", "e2e", "attention", "variants", "junit"):
        sys.exit(__doc__)
    if sys.argv[1] == "junit":
        junit(sys.argv[2])
    elif sys.argv[1] == "e2e":
        e2e(sys.argv[2])
    elif sys.argv[1] == "variants":
        variants(sys.argv[2])
    elif sys.argv[1] == "attention":
        if len(sys.argv) != 4:
            sys.exit(__doc__)
        attention(json.load(open(sys.argv[2])), json.load(open(sys.argv[3])))
    else:
        {"kernels": kernels, "conv": conv}[sys.argv[1]](json.load(open(sys.argv[2])))
