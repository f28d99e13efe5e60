#!/usr/bin/env python3
"""Convert the LM-O CAD models (BOP ascii PLY) to binary little-endian PLY under data/models/lmo.

Every vertex property is kept with its declared type (positions in millimetres, normals, colours);
faces must be triangles. Also copies models_info.json and writes the licence README. The result
is checked by reading both files back with open3d. Reproducible: same input, same bytes.

    python scripts/convert_lmo_models.py [--src ../shared/data/lmo/models] [--dst data/models/lmo]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import open3d as o3d

ROOT = Path(__file__).resolve().parents[1]
_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "<i2", "int16": "<i2",
    "ushort": "<u2", "uint16": "<u2", "int": "<i4", "int32": "<i4", "uint": "<u4",
    "uint32": "<u4", "float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8",
}  # fmt: skip
README = """\
# LM-O object models (binary PLY)

The eight Linemod-Occluded (LM-O) CAD models used by gcf_ros: 1 ape, 5 can, 6 cat, 8 driller,
9 duck, 10 eggbox (symmetric), 11 glue (symmetric), 12 holepuncher.

- `obj_0000NN.ply`: binary little-endian PLY, **millimetres** (scale 0.001 to metres), with vertex
  normals and RGBA vertex colours, converted losslessly from the BOP ascii PLY files by
  `scripts/convert_lmo_models.py` (same vertices, same order, same faces).
- `models_info.json`: the BOP models info (diameter, min_x/y/z, size_x/y/z in mm), unchanged.

Registered in `config/models.yaml`.

## Licence

LM-O: Brachmann et al., "Learning 6D Object Pose Estimation using 3D Object Coordinates",
ECCV 2014; Hinterstoisser et al., "Model Based Training, Detection and Pose Estimation of
Texture-Less 3D Objects in Heavily Cluttered Scenes", ACCV 2012. Redistributed by the BOP
benchmark (Hodaň et al., https://bop.felk.cvut.cz/datasets/) under CC BY-SA 4.0
(https://creativecommons.org/licenses/by-sa/4.0/). These files are a format conversion of that
redistribution and are shared under the same licence; keep this attribution with any copy.
"""


def _parse_header(lines: list[str], path: Path) -> tuple[int, list[tuple[str, str]], int, int]:
    """(n_vertices, vertex properties [(name, type)], n_faces, header line count)."""
    if lines[0] != "ply" or lines[1] != "format ascii 1.0":
        raise ValueError(f"{path}: not an ascii PLY")
    n_verts = n_faces = 0
    props: list[tuple[str, str]] = []
    element = None
    for i, line in enumerate(lines):
        words = line.split()
        if words[:1] == ["element"]:
            element = words[1]
            n_verts = int(words[2]) if element == "vertex" else n_verts
            n_faces = int(words[2]) if element == "face" else n_faces
        elif words[:1] == ["property"] and element == "vertex":
            props.append((words[2], words[1]))
        elif words[:1] == ["property"] and element == "face" and words[1] != "list":
            raise ValueError(f"{path}: unexpected face property {line!r}")
        elif line == "end_header":
            return n_verts, props, n_faces, i + 1
    raise ValueError(f"{path}: no end_header")


def read_ascii_ply(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(structured vertex array, (F, 3) int32 faces, header comments)."""
    lines = path.read_text().splitlines()
    n_verts, props, n_faces, start = _parse_header(lines, path)
    dtype = np.dtype([(name, _PLY_TYPES[kind]) for name, kind in props])
    tokens = np.array(" ".join(lines[start : start + n_verts]).split())
    tokens = tokens.reshape(n_verts, len(props))
    verts = np.empty(n_verts, dtype=dtype)
    for k, (name, _) in enumerate(props):
        verts[name] = tokens[:, k].astype(dtype[name])  # parsed straight to the declared type
    faces = np.array(" ".join(lines[start + n_verts : start + n_verts + n_faces]).split(), int)
    faces = faces.reshape(n_faces, 4)
    if not (faces[:, 0] == 3).all():
        raise ValueError(f"{path}: only triangle faces are supported")
    comments = [ln[len("comment ") :] for ln in lines[:start] if ln.startswith("comment ")]
    return verts, faces[:, 1:].astype(np.int32), comments


def write_binary_ply(path: Path, verts: np.ndarray, faces: np.ndarray, comments: list[str]) -> None:
    """Binary little-endian PLY with the vertex fields of ``verts`` and triangle ``faces``."""
    names = {v: k for k, v in _PLY_TYPES.items() if k in ("char", "uchar", "short", "ushort")}
    names.update({"<i4": "int", "<u4": "uint", "<f4": "float", "<f8": "double"})
    header = ["ply", "format binary_little_endian 1.0"]
    header += [f"comment {c}" for c in comments]
    header += ["comment converted by gcf_ros scripts/convert_lmo_models.py"]
    header.append(f"element vertex {len(verts)}")
    header += [
        f"property {names[verts.dtype[n].str.replace('|', '')]} {n}" for n in verts.dtype.names
    ]
    header += [f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    face_rec = np.empty(len(faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
    face_rec["n"], face_rec["v"] = 3, faces
    with path.open("wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        f.write(verts.astype(verts.dtype.newbyteorder("<")).tobytes())
        f.write(face_rec.tobytes())


def _check_same(src: Path, dst: Path) -> None:
    """open3d reads the same float32 vertices, normals, colours and faces from both files."""
    a, b = o3d.io.read_triangle_mesh(str(src)), o3d.io.read_triangle_mesh(str(dst))
    for attr in ("vertices", "vertex_normals"):
        x, y = np.asarray(getattr(a, attr)), np.asarray(getattr(b, attr))
        assert np.array_equal(x.astype(np.float32), y.astype(np.float32)), (dst, attr)
    assert np.array_equal(np.asarray(a.vertex_colors), np.asarray(b.vertex_colors)), dst
    assert np.array_equal(np.asarray(a.triangles), np.asarray(b.triangles)), dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=ROOT.parent / "shared/data/lmo/models")
    parser.add_argument("--dst", type=Path, default=ROOT / "data/models/lmo")
    args = parser.parse_args(argv)
    sources = sorted(args.src.glob("obj_*.ply"))
    if not sources:
        parser.error(f"no obj_*.ply in {args.src}")
    args.dst.mkdir(parents=True, exist_ok=True)
    for src in sources:
        dst = args.dst / src.name
        verts, faces, comments = read_ascii_ply(src)
        write_binary_ply(dst, verts, faces, comments)
        _check_same(src, dst)
        print(f"{src.name}: {len(verts)} vertices, {len(faces)} faces -> {dst.stat().st_size} B")
    shutil.copyfile(args.src / "models_info.json", args.dst / "models_info.json")
    (args.dst / "README.md").write_text(README)
    return 0


if __name__ == "__main__":
    sys.exit(main())
