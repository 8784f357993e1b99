#!/usr/bin/env python3
"""The scaling model of bench/README.md ("Scaling on paper"), as code, so that the
suite's summary puts it beside what was measured. Times in seconds unless named _ms.

Inputs that are measured, not modelled: the encoded size of a round message
(baton-assignment-bench) and Assign()'s time. Constants are the core's defaults
(takeover/core/node.h Timing, multiples of the heartbeat H; the transport's
framing in takeover/drivers/udp_transport.h).
"""
RHO = 1e-3                  # Timing::max_drift
LEASE_H = 2.5               # Timing::lease = 2.5 H
GRANT_MARGIN_H = 0.05       # Timing::grant_margin = 0.05 H
DISCOVERY_H = 3.0           # Timing::discovery = 3 H
DATAGRAM_OVERHEAD = 40 + 32  # transport header + HMAC-SHA256 (udp_transport.h)
IP_UDP = 28                 # IPv4 + UDP headers per datagram
MTU = 1500
MAX_PAYLOAD = 8192          # UdpTransportOptions::max_payload_bytes default
ONE_WAY_DELAY = 0.001       # d: one-way delay on a LAN (the docs' figure)


def grant_hold(h):
    """G = L (1+ρ)/(1−ρ) + margin."""
    return LEASE_H * h * (1 + RHO) / (1 - RHO) + GRANT_MARGIN_H * h


def messages_per_round(nodes, slots):
    """A round message to each peer, and a reply to each other holder's renewals."""
    return (nodes - 1) + (min(slots, nodes) - 1)


def lease_traffic(nodes, slots, message_bytes, h):
    msgs = messages_per_round(nodes, slots)
    wire = message_bytes + DATAGRAM_OVERHEAD
    frags = -(-(wire + 8) // (MTU - 20))  # IP fragments of one datagram
    bytes_round = msgs * (wire + IP_UDP * frags)
    return dict(messages=msgs, wire_bytes=wire, datagrams_ip=frags,
                fits_8k_payload=message_bytes <= MAX_PAYLOAD,
                kib_per_node_per_round=bytes_round / 1024,
                mbit_per_node_per_s=bytes_round * 8 / h / 1e6)


def failover_ms(h, d=ONE_WAY_DELAY):
    """Server-side outage after a holder crash: G + 3d − φ, φ ∈ [0, H) (docs/takeover.md)."""
    g = grant_hold(h)
    return dict(min_ms=(g + 3 * d - h) * 1000, max_ms=(g + 3 * d) * 1000,
                typ_ms=(g + 3 * d - h / 2) * 1000)


def startup_ms(h, d=ONE_WAY_DELAY):
    """All addresses held after a simultaneous start: quiet period + a round trip."""
    return (max(DISCOVERY_H * h, grant_hold(h)) + 2 * d) * 1000


def store_load(put_rate, incr_rate, get_rate, slots_moved):
    """Commits per second and fence writes: one commit per writing request (state +
    completion record, one atomic batch), none for a read; one fence write per slot
    a host takes over (framework/fence.h Establish)."""
    return dict(commits_per_s=put_rate + incr_rate, reads_per_s=get_rate,
                fence_writes=slots_moved)


if __name__ == "__main__":
    for h in (1.0, 0.1, 0.01):
        print(f"H={h:g}s fail-over {failover_ms(h)}")
    for n, s in ((3, 6), (16, 128), (64, 1024)):
        print(n, s, messages_per_round(n, s))
