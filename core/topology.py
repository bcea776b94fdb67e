"""The lab's topology: regions, networks and addresses (the model compose.yaml must agree with).

A unit test checks compose.yaml against this model, so the two cannot drift apart silently.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

PROJECT = "wobble"

#: The lab's own control services: a crash of one is the lab failing, not a fault the lab injects, so
#: docker brings them back by themselves (`restart: unless-stopped` in compose.yaml, and only there;
#: tests/unit/test_compose.py keeps the two in step). The SBCs, PBXs, media and databases are the
#: subject: their crashes are faults, and must stay down until the fault reverts them. A `docker
#: kill`/`docker stop` (what the crash faults do) is a manual stop, which docker never restarts.
RESTART_ON_CRASH: frozenset[str] = frozenset({"chaos", "steering", "config-api", "dns"})
RESTART_POLICY = "unless-stopped"


class Region(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str  # "region-a"
    letter: str  # "a": the suffix of its services (sbc-a, pbx-a, ...) and its agents' prefix
    network: str  # "region-a"
    subnet: str
    sbc_carrier_ip: str
    sbc_region_ip: str
    media_carrier_ip: str
    media_region_ip: str
    pbx_ip: str
    agents_ip: str
    db_ip: str  # the records database (lab/records) on the region network
    db_backbone_ip: str  # ... and on the backbone (replication)

    @property
    def sbc_service(self) -> str:
        return f"sbc-{self.letter}"

    @property
    def pbx_service(self) -> str:
        return f"pbx-{self.letter}"

    @property
    def agents_service(self) -> str:
        return f"agents-{self.letter}"

    @property
    def db_service(self) -> str:
        return f"db-{self.letter}"

    @property
    def media_service(self) -> str:
        return f"media-{self.letter}"

    @property
    def infrastructure(self) -> tuple[str, ...]:
        """The services the region is made of (a region outage takes all of them at once). Its agents
        are people, not the region's machines: they outlive it and re-home to the other region."""
        return (self.sbc_service, self.media_service, self.pbx_service, self.db_service)

    @property
    def sip_uri(self) -> str:
        """Where a customer's call to this region goes: its SBC's carrier side."""
        return f"sip:support@{self.sbc_carrier_ip}:5060"


def _region(letter: str, index: int) -> Region:
    net = f"10.77.{index}"
    return Region(
        name=f"region-{letter}",
        letter=letter,
        network=f"region-{letter}",
        subnet=f"{net}.0/24",
        sbc_carrier_ip=f"10.77.0.{10 + index}",
        sbc_region_ip=f"{net}.11",
        media_carrier_ip=f"10.77.0.{20 + index}",
        media_region_ip=f"{net}.21",
        pbx_ip=f"{net}.31",
        agents_ip=f"{net}.41",
        db_ip=f"{net}.70",
        db_backbone_ip=f"10.77.9.{70 + index}",
    )


class Topology(BaseModel):
    model_config = ConfigDict(frozen=True)

    zone: str = "cx.lab"
    carrier_subnet: str = "10.77.0.0/24"
    backbone_subnet: str = "10.77.9.0/24"
    caller_ip: str = "10.77.0.50"
    steering_ip: str = "10.77.0.5"
    steering_http_port: int = 8080
    config_api_ip: str = "10.77.9.6"
    chaos_url: str = "http://10.77.9.7:8070"
    records_exporter_ip: str = "10.77.9.73"
    toxiproxy_ips: dict[str, str] = {"region-a": "10.77.1.60", "region-b": "10.77.2.60", "backbone": "10.77.9.60"}
    resolver_ips: dict[str, str] = {
        "carrier": "10.77.0.2",
        "region-a": "10.77.1.2",
        "region-b": "10.77.2.2",
        "backbone": "10.77.9.2",
    }
    regions: tuple[Region, ...] = (_region("a", 1), _region("b", 2))

    @classmethod
    def default(cls) -> Topology:
        return cls()

    @property
    def region_names(self) -> list[str]:
        return [r.name for r in self.regions]

    def region(self, name: str) -> Region:
        for r in self.regions:
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def steering_url(self) -> str:
        return f"http://{self.steering_ip}:{self.steering_http_port}"

    @property
    def network_names(self) -> tuple[str, ...]:
        """Every lab network: carrier, backbone, then each region's."""
        return tuple(self.subnets())

    def subnets(self) -> dict[str, str]:
        nets = {"carrier": self.carrier_subnet, "backbone": self.backbone_subnet}
        nets.update({r.network: r.subnet for r in self.regions})
        return nets

    def dns_records(self) -> dict[str, str]:
        """A records of the lab zone: each service by name, as a caller would look it up."""
        z = self.zone
        records = {
            f"caller.{z}": self.caller_ip,
            f"dns.{z}": self.resolver_ips["carrier"],
            f"steering.{z}": self.steering_ip,
        }
        for r in self.regions:
            records[f"{r.sbc_service}.{z}"] = r.sbc_carrier_ip
            records[f"{r.media_service}.{z}"] = r.media_carrier_ip
            records[f"{r.pbx_service}.{z}"] = r.pbx_ip
            records[f"{r.agents_service}.{z}"] = r.agents_ip
            records[f"{r.name}.{z}"] = r.sbc_carrier_ip
        return records
