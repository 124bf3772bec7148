"""Consumer-group members that are dead: recognised by the client id, and removed.

Why: noida-db 0.2.3, the embedded broker, never expires the session of a member whose process died
(``kill -9``, OOM): the dead member keeps its partitions for ever, so a worker restarted at once — or a
surviving second worker — never processes them (measured: still unassigned after 40 s with a 10 s
session timeout; broker-notes.md). Apache Kafka evicts such a member itself after
``session.timeout.ms``. Static membership (``group.instance.id``), the usual cure, is broken on noida-db
(heartbeats fail with "member_id was not recognized").

So every worker names itself ``hub-worker/<host>/<pid>/<process start time>`` and, at start and then
periodically, removes members of its group whose id names *this* host and a process that no longer
exists (or another process that reused the pid: the start time differs). A live member is never removed;
members on other hosts are left to the broker's own session timeout.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "hub-worker"

__all__ = ["client_id", "is_dead_local", "reap_dead_members"]


def _start_ticks(pid: int) -> str | None:
    """The process start time in clock ticks since boot (field 22 of /proc/<pid>/stat), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may contain spaces: split after the last ')'
    return stat.rsplit(")", 1)[1].split()[19]


def client_id(pid: int | None = None) -> str:
    """This process's client id: ``hub-worker/<host>/<pid>/<start ticks>``."""
    pid = os.getpid() if pid is None else pid
    return f"{PREFIX}/{socket.gethostname()}/{pid}/{_start_ticks(pid) or 0}"


def is_dead_local(member_client_id: str, host: str | None = None) -> bool:
    """Whether a member's client id names a process of this host that is gone."""
    parts = member_client_id.split("/")
    if len(parts) != 4 or parts[0] != PREFIX or parts[1] != (host or socket.gethostname()):
        return False
    try:
        pid = int(parts[2])
    except ValueError:
        return False
    return _start_ticks(pid) != parts[3]


def reap_dead_members(bootstrap: str, group_id: str, admin_factory: Callable[[], Any] | None = None) -> list[str]:
    """Remove the members of ``group_id`` that :func:`is_dead_local` recognises; returns their client ids."""
    from kafka.admin import KafkaAdminClient, MemberToRemove

    from hub.clients import kafka_python_options

    admin = admin_factory() if admin_factory else KafkaAdminClient(
        bootstrap_servers=bootstrap.split(","), client_id="hub-reaper", **kafka_python_options())
    try:
        described = admin.describe_groups([group_id]).get(group_id) or {}
        dead = [m for m in described.get("members") or [] if is_dead_local(str(m.get("client_id", "")))]
        if dead:
            admin.remove_group_members(group_id, [MemberToRemove(member_id=m["member_id"]) for m in dead])
            log.warning("removed %d dead member(s) of consumer group %s: %s", len(dead), group_id,
                        ", ".join(m["client_id"] for m in dead))
        return [m["client_id"] for m in dead]
    finally:
        admin.close()
