"""Write the example "your own object" of README "Adding your own object": a toy hammer.

    python scripts/make_example_object.py [--out data/models/example]

An OBJ with two materials (an orange handle, a blue-grey head; colours from the .mtl's Kd) in
millimetres, modelled y-up as many CAD files are, 146 mm tall (diameter 16.4 cm). The head sticks
out further on one side, so no rotation maps the hammer onto itself. Generated here so that it is
licence-clean; nothing the network was trained on. Deterministic: rerunning writes the same files.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

HANDLE_RADIUS, HANDLE_TOP, SEGMENTS = 11.0, 120.0, 20  # mm; the handle stands on y = 0
HEAD_MIN, HEAD_MAX = (-22.0, 120.0, -13.0), (48.0, 146.0, 13.0)  # mm, axis-aligned box
MATERIALS = {"handle": (0.85, 0.45, 0.12), "head": (0.22, 0.30, 0.45)}


def cylinder(radius: float, height: float, segments: int):
    """(vertices, triangles) of a closed cylinder along +y from y = 0; the caps have their own
    vertices so that their normals stay flat."""
    ring = [(radius * math.cos(2 * math.pi * k / segments),
             radius * math.sin(2 * math.pi * k / segments)) for k in range(segments)]  # fmt: skip
    verts = [(x, y, z) for y in (0.0, height) for x, z in ring]
    tris = []
    for k in range(segments):
        a, b = k, (k + 1) % segments
        tris += [(a, a + segments, b), (b, a + segments, b + segments)]
    for y, flip in ((0.0, False), (height, True)):
        centre = len(verts)
        verts += [(0.0, y, 0.0), *((x, y, z) for x, z in ring)]
        for k in range(segments):
            a, b = centre + 1 + k, centre + 1 + (k + 1) % segments
            tris.append((centre, b, a) if flip else (centre, a, b))
    return verts, tris


def box(lo, hi):
    """(vertices, triangles) of an axis-aligned box, four vertices per face (flat normals)."""
    verts, tris = [], []
    for axis in range(3):
        u, v = [a for a in range(3) if a != axis]
        for side, value in ((-1, lo[axis]), (1, hi[axis])):
            base = len(verts)
            for cu, cv in ((lo[u], lo[v]), (hi[u], lo[v]), (hi[u], hi[v]), (lo[u], hi[v])):
                p = [0.0, 0.0, 0.0]
                p[axis], p[u], p[v] = value, cu, cv
                verts.append(tuple(p))
            # (u, v, axis) is right-handed for axis = x and z, left-handed for y
            outward = side * (1 if axis != 1 else -1) > 0
            quad = (0, 1, 2, 3) if outward else (0, 3, 2, 1)
            tris += [(base + quad[0], base + quad[1], base + quad[2]),
                     (base + quad[0], base + quad[2], base + quad[3])]  # fmt: skip
    return verts, tris


def write(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    mtl = out / "hammer.mtl"
    mtl.write_text("# gcf_ros example object (scripts/make_example_object.py)\n" + "".join(
        f"newmtl {name}\nKd {r:.3f} {g:.3f} {b:.3f}\nKa 0 0 0\nKs 0 0 0\nd 1\nillum 1\n\n"
        for name, (r, g, b) in MATERIALS.items()
    ))  # fmt: skip
    lines = ["# gcf_ros example object: a toy hammer, millimetres, y up", f"mtllib {mtl.name}"]
    offset = 0
    parts = (("handle", cylinder(HANDLE_RADIUS, HANDLE_TOP, SEGMENTS)),
             ("head", box(HEAD_MIN, HEAD_MAX)))  # fmt: skip
    for name, (verts, tris) in parts:
        lines += [f"o {name}"] + [f"v {x:.3f} {y:.3f} {z:.3f}" for x, y, z in verts]
        lines += [f"usemtl {name}"]
        lines += [f"f {a + 1 + offset} {b + 1 + offset} {c + 1 + offset}" for a, b, c in tris]
        offset += len(verts)
    obj = out / "hammer.obj"
    obj.write_text("\n".join(lines) + "\n")
    return [obj, mtl]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("data/models/example"))
    args = p.parse_args(argv)
    for path in write(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
