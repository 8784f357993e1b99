#!/usr/bin/env python3
"""The scaling model of bench/README.md ("Scaling on paper"), as code, so that the
suite's summary puts it beside what was measured. Times in seconds unless named _ms.

Inputs that are measured, not modelled: the encoded size of a round message
(baton-assignment-bench: the average of a steady round's messages, wire v4)
and Assign()'s time. message_bytes() models that size from the layout of
takeover/core/wire.cc, to check the measurement and the simulation against. Constants are the core's defaults
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


def varint_bytes(v):
    """Length of a LEB128 varint."""
    n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


# Wire v4 (takeover/core/wire.cc, docs/takeover.md "Lease traffic").
V4_HEADER = 4 + 8 + 8 + 3 + 3   # magic, version, flags; incarnation; send_time;
                                # seq (≤ 3 B up to 2M messages); three section counts
V4_STATE = 12                   # view and members (one run: 3 B each), old members,
                                # config version, capacity, promised ballot, drained set
V4_KNOWLEDGE = 4                # knowledge entries per full message (rotation) ...
V4_KNOWLEDGE_BYTES = 4          # ... of slot gap, flags, epoch, holder
V4_REPLY_TRAILER = 16           # peer incarnation + the shared reply echo


def message_bytes(nodes, slots):
    """Average payload of a steady round's messages (wire v4): a full message to
    each peer (state, a renewal per held slot, knowledge in rotation) and a reply
    to each other holder (a grant per slot of that holder). Holders' slots
    interleave (slot gap ≈ holders), epochs are below 128 (one varint byte)."""
    holders = min(slots, nodes)
    held = slots / holders
    entry = varint_bytes(holders - 1) + 1          # slot gap + epoch
    knowledge = min(V4_KNOWLEDGE, slots - held) * V4_KNOWLEDGE_BYTES
    full = V4_HEADER + V4_STATE + held * entry + knowledge
    reply = V4_HEADER + held * entry + V4_REPLY_TRAILER
    rounds, replies = nodes - 1, holders - 1
    return round((full * rounds + reply * replies) / (rounds + replies))


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
    for n, s in ((3, 6), (3, 128), (3, 1024), (16, 6), (16, 128), (16, 1024),
                 (64, 6), (64, 128), (64, 1024)):
        b = message_bytes(n, s)
        t = lease_traffic(n, s, b, 0.010)
        print(f"{n} x {s}: {messages_per_round(n, s)} msgs/round, {b:.0f} B/msg, "
              f"{t['datagrams_ip']} datagram(s), {t['mbit_per_node_per_s']:.1f} Mbit/s at H = 10 ms")
