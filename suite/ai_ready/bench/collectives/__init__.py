"""Collective communication benchmarks: nccl-tests' figures over NCCL, gloo and MPI, checked, with alpha-beta fits."""
