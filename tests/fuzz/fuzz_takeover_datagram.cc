// libFuzzer target: what a take-over peer does with a received datagram: the
// transport's authentication (takeover::OpenDatagram: length, magic, version,
// HMAC-SHA256) and then the core's strict decoder (takeover::wire::Decode).
//
// The first input byte picks the mode, the rest is the data:
//   even: the data is a whole datagram, as it comes off the socket (forged,
//         truncated, tampered; the seeds are authentic ones under kKey);
//   odd:  the data is a payload that a key holder sealed (what a peer with a
//         bug, or a stolen key, could send): it passes the MAC and reaches the
//         decoder.
// Properties checked besides crashes and sanitizer reports: a datagram that
// opens is byte for byte what sealing its header and payload gives (the MAC
// covers every byte); a sealed payload always opens to itself; a message that
// decodes encodes back to the same bytes (the decoder is strict: one encoding
// per message).
#include <cstdint>
#include <string>
#include <string_view>

#include "takeover/core/wire.h"
#include "takeover/drivers/udp_transport.h"
#include "tests/fuzz/fuzz_util.h"

namespace baton::fuzz {
namespace {

// The cluster key of the seeds (tests/fuzz/corpus/takeover_datagram/).
constexpr std::string_view kKey = "baton-fuzz-cluster-key-0123456789abcdef";
constexpr size_t kMaxPayload = 8192;  // UdpTransportOptions' default

void CheckDecode(std::string_view payload) {
  std::optional<takeover::wire::Message> m = takeover::wire::Decode(payload);
  if (!m) return;
  Check(takeover::wire::Encode(*m) == payload,
        "wire::Decode accepted bytes that do not re-encode to themselves");
}

void CheckDatagram(std::string_view datagram) {
  takeover::OpenResult r = takeover::OpenDatagram(datagram, kKey, kMaxPayload);
  if (!r.ok) return;
  Check(takeover::SealDatagram(r.datagram.header, r.datagram.payload, kKey) == datagram,
        "OpenDatagram accepted a datagram that differs from the sealed one");
  CheckDecode(r.datagram.payload);
}

void CheckSealed(std::string_view payload) {
  if (payload.size() > kMaxPayload) return;
  takeover::DatagramHeader header;
  header.sender = 2;
  header.recipient = 1;
  header.incarnation = 1'700'000'000'000'000'000;
  header.sequence = 7;
  header.send_time_ns = 1'700'000'000'000'000'000;
  std::string datagram = takeover::SealDatagram(header, payload, kKey);
  takeover::OpenResult r = takeover::OpenDatagram(datagram, kKey, kMaxPayload);
  Check(r.ok && r.datagram.payload == payload && r.datagram.header.sender == 2 &&
            r.datagram.header.sequence == 7,
        "a sealed datagram did not open to its own header and payload");
  CheckDecode(r.datagram.payload);
}

}  // namespace
}  // namespace baton::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    baton::fuzz::CheckDatagram(rest);
  } else {
    baton::fuzz::CheckSealed(rest);
  }
  return 0;
}
