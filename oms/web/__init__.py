"""The web blotter (`oms web`): live orders, positions, fills, accounts and charts from the followed
state, recorded sessions with a time slider, and optional HTTP order intake (docs/web.md).

It is a client of the service like any strategy (`oms.client`), never part of it: it imports neither
`oms.service` nor `replay` (the command line hands recorded sessions in).
"""
