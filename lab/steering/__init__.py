"""GSLB steering: which region the next customer call goes to, and why.

`policy` is the pure decision logic (no I/O, no clocks: time is always passed in), `simulator`
replays it against seeded probe loss, and the service modules wrap it with probes, HTTP and DNS.
"""
