"""How long and how much memory does loading a huge convex mesh take (issue 18, "Meshes")?

Writes UV spheres of about 0.5, 1 and 2 M faces (radius 50 mm, binary PLY) and loads each the way
the node does at start-up (``ModelRegistry.render_model`` from a YAML entry with the default
``max_faces``), each in a fresh process: wall and CPU seconds, peak RSS, faces kept, diameter.

    source env.sh && python experiments/mesh_load_scaling.py [--faces 2000000 ...]

Answer (2 shared cores, other jobs running; 2 002 224 faces, 1 001 114 vertices):

- before (commit aa11958): no result. Cleaning, open3d's non-manifold check and Qhull took
  51 s and 2 GB (Qhull alone 18 s and 1.7 GB for the 1 M co-spherical vertices), then the
  pairwise diameter wanted 2048 x 1 M doubles per block (16 GB, several such temporaries): with a
  6 GB cap it failed with MemoryError; uncapped it exhausted the 24 GB of the machine (the issue).
  The same blocks on 40 000 hull points took 10.4 s and 1.8 GB; they grow with the square.
- after: see the table printed by this script, copied into docs/performance.md, "Loading large
  meshes".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import open3d as o3d


def _write_sphere(folder: Path, faces: int) -> Path:
    resolution = round((1 + np.sqrt(1 + faces)) / 2)  # a UV sphere has 4 r (r - 1) faces
    mesh = o3d.geometry.TriangleMesh.create_sphere(radius=50.0, resolution=resolution)
    path = folder / f"sphere_{len(mesh.triangles)}.ply"
    o3d.io.write_triangle_mesh(str(path), mesh, write_ascii=False)
    (folder / f"{path.stem}.yaml").write_text(
        f"models:\n  sphere:\n    mesh: {path.name}\n    scale: 0.001\n"
    )
    return folder / f"{path.stem}.yaml"


def _status_mb(field: str) -> int:
    """A memory field of /proc/self/status (Linux), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024)
    raise KeyError(field)


def _load(yaml_path: str) -> None:
    """Child process: load and print one JSON line."""
    from gcf_ros.core.models import ModelRegistry

    base_rss = _status_mb("VmRSS")
    wall, cpu = time.perf_counter(), time.process_time()
    model = ModelRegistry.from_yaml(yaml_path).render_model("sphere")
    peak = _status_mb("VmHWM")  # peak RSS of this process image (ru_maxrss spans the fork)
    print(json.dumps({
        "wall_s": round(time.perf_counter() - wall, 2),
        "cpu_s": round(time.process_time() - cpu, 2),
        "peak_rss_mb": peak, "rss_before_mb": base_rss,
        "faces": model.num_faces, "vertices": len(model.verts_obj),
        "diameter_m": model.diameter,
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, nargs="+", default=[500_000, 1_000_000, 2_000_000])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _load(args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        print("| faces in | kept | vertices | wall s | CPU s | RSS MB start → peak | diameter m |")
        print("|---|---|---|---|---|---|---|")
        for faces in args.faces:
            yaml_path = _write_sphere(Path(tmp), faces)
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(yaml_path)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            row = json.loads(out.stdout.strip().splitlines()[-1])
            n_in = int(yaml_path.stem.split("_")[1])
            print(
                f"| {n_in} | {row['faces']} | {row['vertices']} | {row['wall_s']} | "
                f"{row['cpu_s']} | {row['rss_before_mb']} → {row['peak_rss_mb']} | "
                f"{row['diameter_m']:.9f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
