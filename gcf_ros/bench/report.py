"""The JSON document and the printed tables of ``gcf-bench``.

JSON (milliseconds, MB; other tools read these keys)::

    per_iteration_ms, per_object_ms: {gcf_gauss_newton, gcf_gradient, gcf_rgbd, mask, rgb} -> median
    p90_ms:      {per_iteration: {method: p90}, per_object: {method: p90}}
    phases_ms:   {method: {phase: {median, p90}}}  per iteration; gcf: crop, render, network,
                 field, region, depth (the terms' own; field without the network), solve,
                 update, other; baselines: forward
                 (render + loss), backward, step, other
    iterations:  {method: median iterations per object}
    ratios:      {mask_over_gcf, rgb_over_gcf}  per iteration, against gcf_gauss_newton;
                 rgbd_over_gcf_per_object: gcf_rgbd / gcf_gauss_newton per object
    scaling:     {method, objects | window_px | mesh_faces | network_backend: [{value, actual,
                 per_iteration_ms, per_object_ms, iterations, phases_ms, memory_mb}], notes};
                 network_backend points also carry "backend" (value: its index in BACKENDS)
    node:        the node end to end (gcf_ros.ros.bench_node), null with --skip-node: cases
                 "<n>" (detections every frame) and "<n>-tracking" (tracking mode)
    memory_mb:   {method: {rss_before, peak_rss, delta}}
    device:      "cpu" | "cuda" | "cuda:N" (the network's and the baselines')
    placement:   where the GCF cases rendered, solved and ran the network, and its backend
                 (gcf_ros.gcf.placement.Placement.to_dict: renderer, render_device,
                 solve_device, network_device, network_backend, bin_size)
    machine:     {cpu, cores, torch_threads, torch, ...}
    settings:    what was run (instances, repeats, frame, noise, seed, ...)
"""

from __future__ import annotations

import dataclasses

from gcf_ros.bench.cases import CaseTiming
from gcf_ros.bench.suite import METHODS, BenchConfig, BenchResults
from gcf_ros.gcf.inference import BACKENDS

JSON_KEYS = (
    "per_iteration_ms", "per_object_ms", "p90_ms", "phases_ms", "iterations", "ratios", "scaling",
    "node", "memory_mb", "device", "placement", "machine", "settings",
)  # fmt: skip
MEMORY_METHOD = (
    "RSS of the process (/proc/self): kernel high-water mark VmHWM reset before each case "
    "(clear_refs), freed heap trimmed first; peak over construction, warm-up and timed runs"
)


def to_json(results: BenchResults, config: BenchConfig, machine: dict, settings: dict) -> dict:
    """The benchmark document (see the module docstring)."""
    m = results.methods
    gcf_it = m["gcf_gauss_newton"].per_iteration.median
    return {
        "per_iteration_ms": {k: m[k].per_iteration.median for k in METHODS},
        "per_object_ms": {k: m[k].per_object.median for k in METHODS},
        "p90_ms": {
            "per_iteration": {k: m[k].per_iteration.p90 for k in METHODS},
            "per_object": {k: m[k].per_object.p90 for k in METHODS},
        },
        "phases_ms": {k: {p: s.to_dict() for p, s in m[k].phases.items()} for k in METHODS},
        "iterations": {k: m[k].iterations for k in METHODS},
        "ratios": {
            "mask_over_gcf": m["mask"].per_iteration.median / gcf_it,
            "rgb_over_gcf": m["rgb"].per_iteration.median / gcf_it,
            # per object, not per iteration: depth may change how many iterations run
            "rgbd_over_gcf_per_object": m["gcf_rgbd"].per_object.median
            / m["gcf_gauss_newton"].per_object.median,
        },
        "scaling": {
            "method": "gcf_gauss_newton",
            **{
                axis: [_point_json(p.value, p.actual, p.timing, axis) for p in points]
                for axis, points in results.scaling.items()
            },
            "notes": list(results.notes),
        },
        "node": None,
        "memory_mb": {k: m[k].memory.to_dict() for k in METHODS},
        "device": config.device,
        "placement": config.placement.to_dict(),
        "machine": machine,
        "settings": {
            **settings,
            "instances": list(results.instances),
            "plan": dataclasses.asdict(config),
            "memory_method": MEMORY_METHOD,
        },
    }


def _point_json(value: int, actual: int, t: CaseTiming, axis: str) -> dict:
    named = {"backend": BACKENDS[value]} if axis == "network_backend" else {}
    return {
        **named,
        "value": value,
        "actual": actual,
        "per_iteration_ms": t.per_iteration.to_dict(),
        "per_object_ms": t.per_object.to_dict(),
        "iterations": t.iterations,
        "phases_ms": {p: s.median for p, s in t.phases.items()},
        "memory_mb": t.memory.to_dict(),
    }


def format_tables(doc: dict) -> str:
    """The methods table, the phase split and the scaling table, from a benchmark document."""
    mc, st, pl = doc["machine"], doc["settings"], doc["placement"]
    lines = [
        f"gcf-bench on {doc['device']}: {mc['cpu']}, {mc['cores']} cores, torch {mc['torch']} "
        f"with {mc['torch_threads']} threads, load average {mc['load_avg_1m']:.2f}",
        f"gcf: {pl['renderer']} renderer on {pl['render_device']}, solve on "
        f"{pl['solve_device']}, {pl['network_backend']} network on {pl['network_device']}",
        f"frame {st['frame']}, instances {', '.join(st['instances'])} (one per refinement), "
        f"{st['noise']} noise, seed {st['seed']}",
        "",
        f"{'method':<18}{'ms/iteration':>16}{'ms/object':>18}{'iters':>7}{'x gcf':>8}"
        f"{'RSS peak':>10}{'delta':>8}",
        f"{'':<18}{'median':>8}{'p90':>8}{'median':>10}{'p90':>8}{'':>7}{'/it':>8}{'MB':>10}"
        f"{'MB':>8}",
    ]
    gcf_it = doc["per_iteration_ms"]["gcf_gauss_newton"]
    for k in METHODS:
        mem = doc["memory_mb"][k]
        lines.append(
            f"{k:<18}{doc['per_iteration_ms'][k]:>8.1f}{doc['p90_ms']['per_iteration'][k]:>8.1f}"
            f"{doc['per_object_ms'][k]:>10.1f}{doc['p90_ms']['per_object'][k]:>8.1f}"
            f"{doc['iterations'][k]:>7.0f}{doc['per_iteration_ms'][k] / gcf_it:>8.1f}"
            f"{mem['peak_rss']:>10.0f}{mem['delta']:>8.0f}"
        )
    lines += ["", "phases, ms per iteration (median over runs; other: Python glue between them)"]
    for k in METHODS:
        parts = "  ".join(f"{p} {s['median']:.2f}" for p, s in doc["phases_ms"][k].items())
        lines.append(f"{k:<18}{parts}")
    lines += ["", *_scaling_lines(doc["scaling"])]
    if doc.get("node"):
        lines += ["", *format_node_table(doc["node"])]
    return "\n".join(lines)


def _scaling_lines(scaling: dict) -> list[str]:
    lines = [
        f"scaling ({scaling['method']}): ms/iteration of the whole batch; ms/object: run / objects",
        f"{'case':<24}{'ms/iteration':>16}{'ms/object':>18}{'iters':>7}{'RSS delta':>11}"
        f"{'network':>9}{'render':>8}",
        f"{'':<24}{'median':>8}{'p90':>8}{'median':>10}{'p90':>8}{'':>7}{'MB':>11}{'ms/it':>9}"
        f"{'ms/it':>8}",
    ]
    names = {"objects": "objects", "window_px": "window px", "mesh_faces": "faces",
             "network_backend": "network"}  # fmt: skip
    for axis, label in names.items():
        for p in scaling.get(axis, []):
            name = f"{label} {p['value']}"
            name += f" ({p['actual']})" if p["actual"] != p["value"] else ""
            if axis == "network_backend":
                name = f"{label} {p['backend']}"
            it, ob = p["per_iteration_ms"], p["per_object_ms"]
            lines.append(
                f"{name:<24}{it['median']:>8.1f}{it['p90']:>8.1f}{ob['median']:>10.1f}"
                f"{ob['p90']:>8.1f}{p['iterations']:>7.0f}{p['memory_mb']['delta']:>11.0f}"
                f"{p['phases_ms']['network']:>9.2f}{p['phases_ms']['render']:>8.2f}"
            )
    lines += [f"  {note}" for note in scaling.get("notes", [])]
    return lines


def format_node_table(node: dict) -> list[str]:
    """Lines of the node table of ``gcf-bench``'s output."""
    lines = [
        f"node end to end: {node['rate_hz']:.0f} Hz stream for {node['duration_s']:.0f} s, "
        f"real rclpy nodes over Fast DDS, torch threads {node['threads']}",
        f"{'objects':>8}{'mode':>9}{'its':>5}{'in Hz':>7}{'out Hz':>8}{'sent':>6}{'refined':>8}"
        f"{'dropped':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'RSS MB':>8}",
    ]
    for c in node["cases"].values():
        lat = c["latency_ms"] or {"p50": float("nan"), "p90": float("nan"), "p99": float("nan")}
        tracking = c.get("tracking", False)
        its = c.get("tracking_iterations") if tracking else c.get("iterations")
        # dropped: frames sent but never refined (the node's queue, superseded tracking frames)
        dropped = c.get("frames_not_refined", c["dropped_by_queue"])
        lines.append(
            f"{c['detections']:>8}{'tracking' if tracking else 'detect':>9}{its!s:>5}"
            f"{c['input_hz']:>7.1f}{c['output_hz']:>8.1f}{c['frames_sent']:>6}"
            f"{c['frames_refined']:>8}{dropped:>8}"
            f"{lat['p50']:>9.0f}{lat['p90']:>9.0f}{lat['p99']:>9.0f}"
            f"{c['memory_mb']['peak_rss']:>8.0f}"
        )
    return lines
