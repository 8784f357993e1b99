#include "takeover/daemon/agent_link_protocol.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/strings.h"

namespace baton::takeover::agent_link {
namespace {

// The message names; nothing outside this file spells them.
constexpr char kOp[] = "op";
constexpr char kEv[] = "ev";
constexpr char kOpConfig[] = "config";
constexpr char kOpHealth[] = "health";
constexpr char kOpDrain[] = "drain";
constexpr char kOpStatus[] = "status";
constexpr char kOpShutdown[] = "shutdown";
constexpr char kOpClosed[] = "closed";
constexpr char kEvStarted[] = "started";
constexpr char kEvSlot[] = "slot";
constexpr char kEvStatus[] = "status";
constexpr char kEvReleasing[] = "releasing";

// Status documents are a few levels deep; anything deeper is not ours (and a value nested many
// thousand levels would overflow the stack of whoever prints or copies it).
constexpr int kMaxDepth = 32;

std::string Line(const nlohmann::json& j) {
  // Replace invalid UTF-8 (an address or a YAML text is the sender's) instead of throwing.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

// A line's JSON object and its message name (under `name_key`, "op" or "ev").
struct Named {
  nlohmann::json j;
  std::string name;
};

absl::StatusOr<Named> ParseNamed(std::string_view line, const char* name_key) {
  if (line.size() > kMaxLineBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("line of ", line.size(), " bytes (at most ", kMaxLineBytes, ")"));
  }
  bool too_deep = false;
  nlohmann::json j = nlohmann::json::parse(
      line.begin(), line.end(),
      [&too_deep](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
        if (depth > kMaxDepth) too_deep = true;
        return !too_deep;
      },
      /*allow_exceptions=*/false);
  if (too_deep) {
    return absl::InvalidArgumentError(absl::StrCat("nested deeper than ", kMaxDepth, " levels"));
  }
  if (!j.is_object()) return absl::InvalidArgumentError("not a JSON object");
  const auto it = j.find(name_key);
  if (it == j.end() || !it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat("no \"", name_key, "\" name"));
  }
  std::string name = it->get<std::string>();
  return Named{std::move(j), std::move(name)};
}

// Field readers: kInvalidArgument naming the message and the field.
class Fields {
 public:
  Fields(const nlohmann::json& j, std::string_view name) : j_(j), name_(name) {}

  absl::StatusOr<uint64_t> U64(const char* key) const {
    const auto it = j_.find(key);
    if (it == j_.end() || !it->is_number_unsigned()) return Bad(key, "an unsigned integer");
    return it->get<uint64_t>();
  }
  absl::StatusOr<uint32_t> U32(const char* key) const {
    absl::StatusOr<uint64_t> v = U64(key);
    if (!v.ok()) return v.status();
    if (*v > UINT32_MAX) return Bad(key, "a 32-bit unsigned integer");
    return static_cast<uint32_t>(*v);
  }
  absl::StatusOr<bool> Bool(const char* key) const {
    const auto it = j_.find(key);
    if (it == j_.end() || !it->is_boolean()) return Bad(key, "true or false");
    return it->get<bool>();
  }
  absl::StatusOr<std::string> String(const char* key) const {
    const auto it = j_.find(key);
    if (it == j_.end() || !it->is_string()) return Bad(key, "a string");
    return it->get<std::string>();
  }
  // Absent means version 0 (the protocol before versions were exchanged).
  absl::StatusOr<uint32_t> Version() const {
    if (!j_.contains("version")) return 0u;
    return U32("version");
  }

 private:
  absl::Status Bad(const char* key, const char* what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", AV(name_), "\" message: \"", key, "\" must be ", what));
  }
  const nlohmann::json& j_;
  std::string_view name_;
};

// Shortens `RETURN_IF_ERROR`-style unpacking of the field readers.
#define BATON_AGENT_LINK_ASSIGN(lhs, expr) \
  {                                        \
    auto v = (expr);                       \
    if (!v.ok()) return v.status();        \
    lhs = *std::move(v);                   \
  }

// slot, address, epoch: the fields SlotChange and Releasing share.
template <class M>
absl::Status SlotFields(const Fields& f, M& m) {
  BATON_AGENT_LINK_ASSIGN(m.slot, f.U32("slot"));
  BATON_AGENT_LINK_ASSIGN(m.address, f.String("address"));
  BATON_AGENT_LINK_ASSIGN(m.epoch, f.U64("epoch"));
  return absl::OkStatus();
}

}  // namespace

std::string Encode(const ServerMessage& message) {
  return Line(std::visit(
      Overloaded{
          [](const Config& m) -> nlohmann::json {
            return {{kOp, kOpConfig}, {"version", m.version}, {"yaml", m.yaml}};
          },
          [](const Health& m) -> nlohmann::json {
            return {{kOp, kOpHealth}, {"healthy", m.healthy}};
          },
          [](const Drain& m) -> nlohmann::json {
            return {{kOp, kOpDrain},
                    {"slot", m.slot ? nlohmann::json(*m.slot) : nlohmann::json(nullptr)},
                    {"drain", m.drain}};
          },
          [](const StatusRequest& m) -> nlohmann::json {
            return {{kOp, kOpStatus}, {"id", m.id}};
          },
          [](const Shutdown&) -> nlohmann::json { return {{kOp, kOpShutdown}}; },
          [](const Closed& m) -> nlohmann::json { return {{kOp, kOpClosed}, {"id", m.id}}; },
      },
      message));
}

std::string Encode(const AgentMessage& message) {
  return Line(std::visit(
      Overloaded{
          [](const Started& m) -> nlohmann::json {
            return {{kEv, kEvStarted}, {"version", m.version}};
          },
          [](const SlotChange& m) -> nlohmann::json {
            return {{kEv, kEvSlot},
                    {"slot", m.slot},
                    {"address", m.address},
                    {"held", m.held},
                    {"epoch", m.epoch}};
          },
          [](const StatusReply& m) -> nlohmann::json {
            return {{kEv, kEvStatus}, {"id", m.id}, {"status", m.status}};
          },
          [](const Releasing& m) -> nlohmann::json {
            return {{kEv, kEvReleasing},
                    {"id", m.id},
                    {"slot", m.slot},
                    {"address", m.address},
                    {"epoch", m.epoch}};
          },
      },
      message));
}

absl::StatusOr<ServerMessage> DecodeServerMessage(std::string_view line) {
  absl::StatusOr<Named> named = ParseNamed(line, kOp);
  if (!named.ok()) return named.status();
  const nlohmann::json* j = &named->j;
  const std::string* op = &named->name;
  const Fields f(*j, *op);
  if (*op == kOpConfig) {
    Config m;
    BATON_AGENT_LINK_ASSIGN(m.version, f.Version());
    BATON_AGENT_LINK_ASSIGN(m.yaml, f.String("yaml"));
    return m;
  }
  if (*op == kOpHealth) {
    Health m;
    BATON_AGENT_LINK_ASSIGN(m.healthy, f.Bool("healthy"));
    return m;
  }
  if (*op == kOpDrain) {
    Drain m;
    if (const auto it = j->find("slot"); it != j->end() && !it->is_null()) {
      BATON_AGENT_LINK_ASSIGN(m.slot, f.U32("slot"));
    }
    BATON_AGENT_LINK_ASSIGN(m.drain, f.Bool("drain"));
    return m;
  }
  if (*op == kOpStatus) {
    StatusRequest m;
    BATON_AGENT_LINK_ASSIGN(m.id, f.U64("id"));
    return m;
  }
  if (*op == kOpShutdown) return Shutdown{};
  if (*op == kOpClosed) {
    Closed m;
    BATON_AGENT_LINK_ASSIGN(m.id, f.U64("id"));
    return m;
  }
  return absl::UnimplementedError(absl::StrCat("unknown op \"", *op, "\""));
}

absl::StatusOr<AgentMessage> DecodeAgentMessage(std::string_view line) {
  absl::StatusOr<Named> named = ParseNamed(line, kEv);
  if (!named.ok()) return named.status();
  nlohmann::json* j = &named->j;
  const std::string* ev = &named->name;
  const Fields f(*j, *ev);
  if (*ev == kEvStarted) {
    Started m;
    BATON_AGENT_LINK_ASSIGN(m.version, f.Version());
    return m;
  }
  if (*ev == kEvSlot) {
    SlotChange m;
    if (absl::Status s = SlotFields(f, m); !s.ok()) return s;
    BATON_AGENT_LINK_ASSIGN(m.held, f.Bool("held"));
    return m;
  }
  if (*ev == kEvStatus) {
    StatusReply m;
    BATON_AGENT_LINK_ASSIGN(m.id, f.U64("id"));
    auto it = j->find("status");
    if (it == j->end() || !it->is_object()) {
      return absl::InvalidArgumentError("\"status\" message: \"status\" must be an object");
    }
    m.status = std::move(*it);
    return m;
  }
  if (*ev == kEvReleasing) {
    Releasing m;
    BATON_AGENT_LINK_ASSIGN(m.id, f.U64("id"));
    if (absl::Status s = SlotFields(f, m); !s.ok()) return s;
    return m;
  }
  return absl::UnimplementedError(absl::StrCat("unknown ev \"", *ev, "\""));
}

#undef BATON_AGENT_LINK_ASSIGN

absl::Status CheckVersion(uint32_t version, std::string_view from) {
  if (version == kVersion) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("agent protocol version ", version, " from ",
                                                    AV(from), ", expected ", kVersion));
}

}  // namespace baton::takeover::agent_link
