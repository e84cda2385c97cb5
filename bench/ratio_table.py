#!/usr/bin/env python3
"""Turns gpuml_bench JSON output into a ratio table (stdlib only).

Usage: ratio_table.py RESULTS.json [MORE.json ...]

Benchmarks are named KIND/CASE/PROVIDER[/real_time]; each reports a GFLOP/s counter. For every
case the table shows each provider's GFLOP/s (median when repetitions were run) and gpuml's
speed as a fraction of oneDNN's and OpenBLAS's (1.00 = as fast, above 1 = faster): the kernel
alone (gpuml_kernel, output preallocated as in the graph executor) and the eager run_op call
(gpuml, which also allocates the output).

Cases whose providers are `fused` and `unfused` (bench/fusion_bench.cpp: planned steps with and
without the planner's matmul+bias+activation fusion) get a table of their own with fused/unfused.
"""
import json
import sys

PEERS = ["gpuml_kernel", "gpuml", "onednn", "onednn_blocked", "openblas"]


def provider_key(provider):
    # The conv peer built on OpenBLAS is im2col + sgemm; it fills the OpenBLAS column.
    return "openblas" if provider.startswith("openblas") else provider


def load(paths):
    """{(kind, case): {provider: gflops or None (skipped)}}, cases in registration order."""
    table, errors, order = {}, {}, {}
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for b in data.get("benchmarks", []):
            name = b.get("run_name", b["name"])
            parts = [p for p in name.split("/") if p != "real_time"]
            if len(parts) < 3:
                continue
            key, provider = (parts[0], parts[1]), provider_key(parts[2])
            row = table.setdefault(key, {})
            # Interleaved repetitions come out shuffled; family_index is the registration order.
            order[key] = min(order.get(key, 1 << 30), b.get("family_index", len(order)))
            if b.get("error_occurred"):
                row.setdefault(provider, None)
                errors[key + (provider,)] = b.get("error_message", "error")
                continue
            if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
                continue
            if "GFLOP/s" in b:
                row[provider] = b["GFLOP/s"]
    return dict(sorted(table.items(), key=lambda item: order[item[0]])), errors


def fmt_rate(value):
    return "skipped" if value is None else ("-" if value == "" else f"{value:.1f}")


def ratio(a, b):
    if a in (None, "") or b in (None, "") or b == 0:
        return "-"
    return f"{a / b:.2f}"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    table, errors = load(sys.argv[1:])
    header = ["kind", "case", "gpuml kernel", "gpuml eager", "oneDNN", "oneDNN blocked", "OpenBLAS",
              "kernel/oneDNN", "kernel/OpenBLAS", "eager/oneDNN"]
    fusion = {key: row for key, row in table.items() if "fused" in row or "unfused" in row}
    table = {key: row for key, row in table.items() if key not in fusion}
    rows = []
    for (kind, case), row in table.items():
        kernel, eager, onednn, _, openblas = vals = [row.get(p, "") for p in PEERS]
        rows.append([kind, case] + [fmt_rate(v) for v in vals] +
                    [ratio(kernel, onednn), ratio(kernel, openblas), ratio(eager, onednn)])
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    if rows:
        print("GFLOP/s, median of the repetitions (higher is better); ratios above 1: gpuml is faster.")
        print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        for r in rows:
            print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    if fusion:
        print("\nPlanned steps, GFLOP/s of the matmuls (median); fused/unfused above 1: fusion is faster.")
        frows = [["case", "fused", "unfused", "fused/unfused"]]
        for (kind, case), row in fusion.items():
            fused, unfused = row.get("fused", ""), row.get("unfused", "")
            frows.append([f"{kind}/{case}", fmt_rate(fused), fmt_rate(unfused), ratio(fused, unfused)])
        fwidths = [max(len(r[i]) for r in frows) for i in range(4)]
        for r in frows:
            print("  ".join(c.ljust(w) for c, w in zip(r, fwidths)))
    skipped = sorted({msg for msg in errors.values()})
    if skipped:
        print("\nskipped: " + "; ".join(skipped))


if __name__ == "__main__":
    main()
