"""An owncdn DNS server following a control plane, in this process (as `owncdn dns --control`).

    async with DnsNodeUnderTest(fleet, tmp_path / "dns") as dns:
        dns.port                      # UDP and TCP on 127.0.0.1
"""

from __future__ import annotations

from pathlib import Path

from owncdn.core.config import parse_config
from owncdn.dns.cdnzone import build_zone
from owncdn.dns.challenges import follow_challenges
from owncdn.dns.node import DnsNode
from owncdn.dns.releases import follow_releases
from owncdn.dns.server import DnsServer
from owncdn.edge.sync import SyncAgent

__all__ = ["DnsNodeUnderTest"]


class DnsNodeUnderTest:
    def __init__(self, fleet, state_dir: Path, name: str = "dns-1") -> None:
        self.fleet = fleet
        self.state_dir = Path(state_dir)
        self.name = name
        self.server: DnsServer | None = None
        self.agent: SyncAgent | None = None

    def __repr__(self) -> str:
        return f"<DnsNodeUnderTest {self.name} port={self.port}>"

    @property
    def port(self) -> int:
        return self.server.port if self.server is not None else 0

    async def __aenter__(self) -> "DnsNodeUnderTest":
        empty = parse_config("version: 1\n", "(empty)", lambda kind, name: None)
        self.server = await DnsServer.start(build_zone(empty), "127.0.0.1", 0)
        self.agent = SyncAgent(DnsNode(self.server, None, config=empty), self.fleet.url, self.fleet.bootstrap_token,
                               self.state_dir, name=self.name, location="local", env=self.fleet.env,
                               address=f"127.0.0.1:{self.server.port}", kind="dns")
        try:
            from owncdn.dns.health import follow_health

            follow_health(self.agent)
        except ImportError:
            pass
        follow_challenges(self.agent)
        follow_releases(self.agent)  # push services only where their release is served
        self.agent.start()
        return self

    async def connected(self, timeout: float = 10.0) -> None:
        """Until the node is registered and streaming from the control plane."""
        import asyncio

        await asyncio.wait_for(self.agent.connected.wait(), timeout)

    async def __aexit__(self, *exc) -> None:
        if self.agent is not None:
            await self.agent.stop()
        if self.server is not None:
            await self.server.close()
