"""Network impairments inside one network namespace: spec, rules, probe, delay line, warden."""
