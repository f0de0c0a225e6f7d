"""A discrete-event simulator of the claim loop, for `bench/schedule_sim.py` and the tests.

`model` (workload records, lower bound), `workloads` (issue 5's three workloads from a seed),
`engine` (virtual clock, slots, leases), `policies` (FIFO, seed, and ours via
`dispatch.scheduling`).
"""
