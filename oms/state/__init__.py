"""The pure core: the folded state, the order transition table, positions, fills, accounts and the fold.

Imports only `events`. No I/O, no clock, no randomness, no logging: a reader can go through this package
start to finish without meeting a socket. `oms.service` is the shell around it.
"""
