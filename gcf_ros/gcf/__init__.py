"""Geometric Correspondence Fields: network inputs, ground-truth fields, the network, the solvers
and the refinement loop (docs/design.md §2)."""
