// HTTP routes (JSON bodies and replies):
//   PUT    /shows/{show}                {"name":"Hamlet","seats":100}
//   GET    /shows/{show}                -> {"id","name","seats","taken":[..]}
//   POST   /shows/{show}/reservations   {"customer":"ada","seats":[3,4]}
//                                       -> {"id":"r-...","show","customer","seats"}
//   GET    /reservations/{id}
//   DELETE /reservations/{id}
// Send an Idempotency-Key with every write: its retry is answered with the
// first attempt's reply (the same reservation id), never booked again.
#include "reservations.h"

#include <algorithm>
#include <random>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "framework/grpc/typed.h"
#include "framework/json.h"
#include "nlohmann/json.hpp"
#include "reservations.pb.h"

namespace reservations {
namespace {

using baton::framework::Reply;
using baton::framework::Request;
using baton::framework::Transaction;
using json = nlohmann::json;

constexpr int kMaxSeats = 10000;
constexpr size_t kMaxPerReservation = 16;

bool ValidId(const std::string& id) {
  return !id.empty() && id.size() <= 64 &&
         std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
         });
}
std::string ShowKey(const std::string& show) { return "show/" + show; }
std::string SeatKey(const std::string& show, int seat) {
  return absl::StrFormat("seat/%s/%05d", show, seat);
}
std::string ReservationKey(const std::string& id) { return "resv/" + id; }

json ToJson(const Show& s) {
  return {{"id", s.id}, {"name", s.name}, {"seats", s.seats}, {"taken", s.taken}};
}
json ToJson(const Reservation& r) {
  return {{"id", r.id}, {"show", r.show}, {"customer", r.customer},
          {"seats", r.seats}};
}

absl::StatusOr<json> Load(Transaction& txn, const std::string& key) {
  auto v = txn.Get(key);
  if (!v.ok()) return v.status();
  if (!v->present()) return json();
  return baton::framework::ParseJson(v->value);
}

absl::StatusOr<Reservation> ReservationFrom(const json& j) {
  if (!j.is_object()) return absl::DataLossError("malformed reservation");
  Reservation r;
  r.id = j.value("id", "");
  r.show = j.value("show", "");
  r.customer = j.value("customer", "");
  for (const json& s : j.value("seats", json::array())) r.seats.push_back(s.get<int>());
  return r;
}

}  // namespace

absl::StatusOr<Show> CreateShow(Transaction& txn, const std::string& id,
                                const std::string& name, int seats) {
  if (!ValidId(id)) {
    return absl::InvalidArgumentError(
        "a show id is 1..64 characters of a-z, 0-9 and '-'");
  }
  if (name.empty() || name.size() > 200) {
    return absl::InvalidArgumentError("\"name\" must be 1..200 characters");
  }
  if (seats < 1 || seats > kMaxSeats) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"seats\" must be in [1, ", kMaxSeats, "]"));
  }
  auto existing = Load(txn, ShowKey(id));
  if (!existing.ok()) return existing.status();
  if (!existing->is_null()) {
    return absl::AlreadyExistsError(absl::StrCat("show ", id, " exists"));
  }
  Show s{id, name, seats, {}};
  if (auto st = txn.Put(ShowKey(id), json{{"name", name}, {"seats", seats}}.dump());
      !st.ok()) {
    return st;
  }
  return s;
}

absl::StatusOr<Show> GetShow(Transaction& txn, const std::string& id) {
  if (!ValidId(id)) return absl::NotFoundError(absl::StrCat("no show ", id));
  auto j = Load(txn, ShowKey(id));
  if (!j.ok()) return j.status();
  if (j->is_null()) return absl::NotFoundError(absl::StrCat("no show ", id));
  Show s{id, j->value("name", ""), j->value("seats", 0), {}};
  auto taken = txn.Scan(absl::StrCat("seat/", id, "/"), "",
                        static_cast<size_t>(kMaxSeats));
  if (!taken.ok()) return taken.status();
  for (const auto& kv : *taken) {
    s.taken.push_back(std::stoi(kv.key.substr(kv.key.rfind('/') + 1)));
  }
  return s;
}

absl::StatusOr<Reservation> Reserve(Transaction& txn, const std::string& show,
                                    const std::string& customer,
                                    std::vector<int> seats) {
  if (customer.empty() || customer.size() > 200) {
    return absl::InvalidArgumentError("\"customer\" must be 1..200 characters");
  }
  std::sort(seats.begin(), seats.end());
  if (seats.empty() || seats.size() > kMaxPerReservation ||
      std::adjacent_find(seats.begin(), seats.end()) != seats.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"seats\" must list 1..", kMaxPerReservation, " distinct seats"));
  }
  if (!ValidId(show)) return absl::NotFoundError(absl::StrCat("no show ", show));
  auto s = Load(txn, ShowKey(show));
  if (!s.ok()) return s.status();
  if (s->is_null()) return absl::NotFoundError(absl::StrCat("no show ", show));
  const int capacity = s->value("seats", 0);
  std::vector<int> taken;
  for (int seat : seats) {
    if (seat < 1 || seat > capacity) {
      return absl::InvalidArgumentError(
          absl::StrCat("seat ", seat, " does not exist (1..", capacity, ")"));
    }
    auto v = txn.Get(SeatKey(show, seat));
    if (!v.ok()) return v.status();
    if (v->present()) taken.push_back(seat);
  }
  if (!taken.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("seats already taken: ", absl::StrJoin(taken, ",")));
  }
  // A fresh random id: a retry of this request does not run this again, it
  // gets the stored reply with this very id.
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  Reservation r{absl::StrFormat("r-%016x", rng()), show, customer, seats};
  for (int seat : seats) {
    if (auto st = txn.Put(SeatKey(show, seat), r.id); !st.ok()) return st;
  }
  if (auto st = txn.Put(ReservationKey(r.id), ToJson(r).dump()); !st.ok()) {
    return st;
  }
  return r;
}

absl::StatusOr<Reservation> GetReservation(Transaction& txn,
                                           const std::string& id) {
  auto j = Load(txn, ReservationKey(id));
  if (!j.ok()) return j.status();
  if (j->is_null()) return absl::NotFoundError(absl::StrCat("no reservation ", id));
  return ReservationFrom(*j);
}

absl::StatusOr<Reservation> Cancel(Transaction& txn, const std::string& id) {
  auto r = GetReservation(txn, id);
  if (!r.ok()) return r.status();
  for (int seat : r->seats) {
    if (auto st = txn.Delete(SeatKey(r->show, seat)); !st.ok()) return st;
  }
  if (auto st = txn.Delete(ReservationKey(id)); !st.ok()) return st;
  return r;
}

namespace {

// A domain answer (refusals included) is the request's reply, replayed to
// retries; store trouble (kUnavailable, ...) is returned as a status so the
// client retries.
bool IsAnswer(absl::StatusCode c) {
  return c == absl::StatusCode::kInvalidArgument ||
         c == absl::StatusCode::kNotFound ||
         c == absl::StatusCode::kAlreadyExists ||
         c == absl::StatusCode::kFailedPrecondition;
}

template <typename T>
absl::StatusOr<Reply> Answer(const absl::StatusOr<T>& r) {
  if (r.ok()) return Reply::Json(absl::StatusCode::kOk, ToJson(*r).dump());
  if (!IsAnswer(r.status().code())) return r.status();
  json e = {{"error", {{"code", absl::AsciiStrToLower(absl::StatusCodeToString(
                                    r.status().code()))},
                       {"message", std::string(r.status().message())}}}};
  return Reply::Json(r.status().code(), e.dump());
}

absl::StatusOr<json> Body(const Request& req) {
  absl::StatusOr<json> j = baton::framework::ParseJson(req.body);
  if (!j.ok()) return j.status();
  if (!j->is_object()) {
    return absl::InvalidArgumentError("the body must be a JSON object");
  }
  return j;
}

absl::StatusOr<Reply> HttpCreateShow(const Request& req, Transaction& txn) {
  auto b = Body(req);
  if (!b.ok()) return Answer(absl::StatusOr<Show>(b.status()));
  const json& seats = (*b)["seats"];
  if (!(*b)["name"].is_string() || !seats.is_number_integer()) {
    return Answer(absl::StatusOr<Show>(absl::InvalidArgumentError(
        "body: {\"name\": string, \"seats\": integer}")));
  }
  const int64_t n = seats.get<int64_t>();
  return Answer(CreateShow(txn, std::string(req.Param("show")),
                           (*b)["name"].get<std::string>(),
                           n < 0 || n > kMaxSeats ? -1 : static_cast<int>(n)));
}

absl::StatusOr<Reply> HttpReserve(const Request& req, Transaction& txn) {
  auto b = Body(req);
  if (!b.ok()) return Answer(absl::StatusOr<Reservation>(b.status()));
  const json& seats = (*b)["seats"];
  std::vector<int> list;
  bool ok = (*b)["customer"].is_string() && seats.is_array() &&
            seats.size() <= kMaxPerReservation;
  if (ok) {
    for (const json& s : seats) {
      if (!s.is_number_integer() || s.get<int64_t>() < 1 ||
          s.get<int64_t>() > kMaxSeats) {
        ok = false;
        break;
      }
      list.push_back(static_cast<int>(s.get<int64_t>()));
    }
  }
  if (!ok) {
    return Answer(absl::StatusOr<Reservation>(absl::InvalidArgumentError(
        absl::StrCat("body: {\"customer\": string, \"seats\": [1..",
                     kMaxPerReservation, " seat numbers]}"))));
  }
  return Answer(Reserve(txn, std::string(req.Param("show")),
                        (*b)["customer"].get<std::string>(), std::move(list)));
}

void DefineHttp(baton::framework::ServiceDefinition& service) {
  service.Route("PUT", "/shows/{show}", HttpCreateShow);
  service.Route("GET", "/shows/{show}",
                [](const Request& req, Transaction& txn) {
                  return Answer(GetShow(txn, std::string(req.Param("show"))));
                });
  service.Route("POST", "/shows/{show}/reservations", HttpReserve);
  service.Route("GET", "/reservations/{id}",
                [](const Request& req, Transaction& txn) {
                  return Answer(GetReservation(txn, std::string(req.Param("id"))));
                });
  service.Route("DELETE", "/reservations/{id}",
                [](const Request& req, Transaction& txn) {
                  return Answer(Cancel(txn, std::string(req.Param("id"))));
                });
}

// --- gRPC (proto/reservations.proto): the same operations, typed ----------

namespace pb = ::reservations::v1;
using baton::framework::MakeTypedHandler;
using baton::framework::RequestContext;
using baton::framework::TypedReply;

pb::Show ToProto(const Show& s) {
  pb::Show out;
  out.set_id(s.id);
  out.set_name(s.name);
  out.set_seats(s.seats);
  for (int t : s.taken) out.add_taken(t);
  return out;
}
pb::Reservation ToProto(const Reservation& r) {
  pb::Reservation out;
  out.set_id(r.id);
  out.set_show(r.show);
  out.set_customer(r.customer);
  for (int seat : r.seats) out.add_seats(seat);
  return out;
}

// As Answer(): a domain refusal is the call's answer (code, message and a
// `baton-error` name); store trouble is a status the client retries.
template <typename P, typename T>
absl::StatusOr<TypedReply<P>> GrpcAnswer(const absl::StatusOr<T>& r) {
  if (r.ok()) return TypedReply<P>(ToProto(*r));
  if (!IsAnswer(r.status().code())) return r.status();
  return TypedReply<P>::Error(
      r.status().code(), std::string(r.status().message()),
      absl::AsciiStrToLower(absl::StatusCodeToString(r.status().code())));
}

void DefineGrpc(baton::framework::ServiceDefinition& service) {
  service.Method(
      "/reservations.v1.Reservations/CreateShow",
      MakeTypedHandler<pb::CreateShowRequest, pb::Show>(
          [](const pb::CreateShowRequest& req, const RequestContext&,
             Transaction& txn) {
            return GrpcAnswer<pb::Show>(
                CreateShow(txn, req.id(), req.name(), req.seats()));
          }));
  service.Method("/reservations.v1.Reservations/GetShow",
                 MakeTypedHandler<pb::GetShowRequest, pb::Show>(
                     [](const pb::GetShowRequest& req, const RequestContext&,
                        Transaction& txn) {
                       return GrpcAnswer<pb::Show>(GetShow(txn, req.id()));
                     }));
  service.Method(
      "/reservations.v1.Reservations/Reserve",
      MakeTypedHandler<pb::ReserveRequest, pb::Reservation>(
          [](const pb::ReserveRequest& req, const RequestContext&,
             Transaction& txn) {
            return GrpcAnswer<pb::Reservation>(
                Reserve(txn, req.show(), req.customer(),
                        std::vector<int>(req.seats().begin(), req.seats().end())));
          }));
  service.Method("/reservations.v1.Reservations/Cancel",
                 MakeTypedHandler<pb::CancelRequest, pb::Reservation>(
                     [](const pb::CancelRequest& req, const RequestContext&,
                        Transaction& txn) {
                       return GrpcAnswer<pb::Reservation>(
                           Cancel(txn, req.reservation()));
                     }));
}

}  // namespace

void Define(baton::framework::ServiceDefinition& service) {
  DefineHttp(service);
  DefineGrpc(service);
}

}  // namespace reservations
