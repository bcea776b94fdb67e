"""Drills: a scenario run against live traffic to a verdict and a report (issue 13).

The top layer: it may import the lab's core, `chaos.client`/`chaos.catalog`, the steering client
and `lab.records`; nothing imports it. One module per concept:

- `scenario`  the scenario files (`drills/*.yaml`): models, loading with file:line errors
- `sources`   the only place that touches the lab's core I/O (event log, paths, services, git)
- `measure`   pure measurements over a run's events
- `verdict`   SLOs, fault proof and the verdict
- `report`    results/<time>-<scenario>/: events.jsonl, timeline.json, summary.json, junit.xml, report.html
- `lock`      one drill at a time, and the state a killed runner leaves for `wobble drill recover`
- `runner`    the asyncio runner with injectable seams (traffic, chaos, steering, clock, lab)
- `live`      the rich live view
"""
