// The reservations service under baton's test kit: every scenario a network
// and crashing hosts can produce -- a lost reply, duplicates racing on several
// servers, conflicts, commits whose outcome is unknown, restarts -- and the
// invariants that must survive them: no seat booked twice, every seat and its
// reservation pointing at each other, one request making at most one
// reservation (with the same id in every reply).
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "framework/server.h"
#include "framework/testing/assertions.h"
#include "framework/testing/harness.h"
#include "gtest/gtest.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "reservations.grpc.pb.h"
#include "reservations.h"

namespace reservations {
namespace {

using baton::testing::Harness;
using baton::testing::HarnessOptions;
using json = nlohmann::json;

// A harness with the service's HTTP routes, in both execution modes the
// server uses (inline on RocksDB; blocking on etcd, with stale reads).
class ReservationsTest : public ::testing::TestWithParam<int> {
 protected:
  ReservationsTest() : h_(Options(GetParam())) {
    baton::framework::ServiceDefinition service("reservations");
    Define(service);
    EXPECT_TRUE(h_.Routes(service.http()).ok());
    auto r = h_.Send(baton::testing::Put("/shows/hamlet",
                                         R"({"name":"Hamlet","seats":20})")
                         .Key("create-hamlet"));
    EXPECT_EQ(r.last().http_status, 200) << r;
  }
  static HarnessOptions Options(int mode) {
    HarnessOptions o;
    if (mode == 1) {
      o.execution = HarnessOptions::Execution::kBlocking;
      o.etcd_like_reads = true;
    }
    return o;
  }
  static baton::testing::Call Reserve(const std::string& key,
                                      const std::string& customer,
                                      const std::string& seats) {
    return baton::testing::Post("/shows/hamlet/reservations",
                                absl::StrCat(R"({"customer":")", customer,
                                             R"(","seats":)", seats, "}"))
        .Key(key);
  }
  static std::string IdOf(const baton::testing::Attempt& a) {
    return json::parse(std::string(a.body()), nullptr, false).value("id", "");
  }
  // Checks the invariants on the store; returns the number of reservations.
  int CheckInvariants() {
    std::map<int, std::string> seat_owner;
    for (int seat = 1; seat <= 20; ++seat) {
      char key[64];
      std::snprintf(key, sizeof key, "seat/hamlet/%05d", seat);
      if (auto v = h_.Value(key)) seat_owner[seat] = *v;
    }
    auto all = h_.store().Scan({"resv/", "", 1000});
    EXPECT_TRUE(all.ok()) << all.status();
    if (!all.ok()) return -1;
    std::set<std::string> ids;
    size_t seats_held = 0;
    for (const auto& kv : *all) {
      json r = json::parse(kv.value);
      const std::string id = r["id"];
      EXPECT_EQ(kv.key, "resv/" + id);
      ids.insert(id);
      for (int seat : r["seats"]) {
        ++seats_held;
        EXPECT_EQ(seat_owner[seat], id)
            << "reservation " << id << " lost seat " << seat;
      }
    }
    for (const auto& [seat, id] : seat_owner) {
      EXPECT_TRUE(ids.count(id)) << "seat " << seat
                                 << " points at missing reservation " << id;
    }
    EXPECT_EQ(seats_held, seat_owner.size()) << "a seat is booked twice";
    return static_cast<int>(ids.size());
  }

  Harness h_;
};

TEST_P(ReservationsTest, LostReplyRetriedGetsTheSameReservation) {
  auto r = h_.LoseReplyThenRetry(Reserve("k1", "ada", "[3,4]"));
  EXPECT_TRUE(baton::testing::ExactlyOnce(r));
  ASSERT_EQ(r.last().http_status, 200) << r;
  EXPECT_TRUE(r.last().replayed());
  const std::string id = IdOf(r.last());
  EXPECT_EQ(id.size(), 18u) << r;
  EXPECT_EQ(h_.Value("seat/hamlet/00003"), id);
  EXPECT_EQ(CheckInvariants(), 1);
}

TEST_P(ReservationsTest, DuplicatesRacingOnSeveralServersBookOnce) {
  auto r = h_.SendConcurrently(Reserve("k2", "ada", "[7]"), 6);
  EXPECT_TRUE(baton::testing::AtMostOnce(r));
  EXPECT_TRUE(baton::testing::SameReplies(r));
  EXPECT_EQ(r.committed_runs, 1) << r;
  EXPECT_EQ(CheckInvariants(), 1);
}

TEST_P(ReservationsTest, TwoCustomersForOneSeatOneWins) {
  auto ada = h_.Send(Reserve("a", "ada", "[5,6]"));
  auto bob = h_.Send(Reserve("b", "bob", "[6,9]"));
  EXPECT_EQ(ada.last().http_status, 200) << ada;
  EXPECT_EQ(bob.last().http_status, 412) << bob;
  EXPECT_NE(std::string(bob.last().body()).find("6"), std::string::npos);
  EXPECT_EQ(h_.Value("seat/hamlet/00009"), std::nullopt);  // All or nothing.
  // Conflicts with concurrent commits make the handler run again; still one
  // booking.
  auto c = h_.SendWithConflicts(Reserve("c", "cy", "[9,10]"), 3);
  EXPECT_TRUE(baton::testing::ExactlyOnce(c));
  EXPECT_GE(c.handler_runs, 4);
  EXPECT_EQ(CheckInvariants(), 2);
}

TEST_P(ReservationsTest, UnknownCommitOutcomesNeverBookTwice) {
  using baton::testing::Fault;
  auto applied = h_.SendWithFaults(Reserve("u1", "ada", "[11]"),
                                   {Fault::UnknownApplied()});
  EXPECT_TRUE(baton::testing::AtMostOnce(applied));
  EXPECT_EQ(applied.last().http_status, 200) << applied;
  auto lost = h_.SendWithFaults(Reserve("u2", "bob", "[12]"),
                                {Fault::UnknownNotApplied(), Fault::Unavailable()});
  EXPECT_TRUE(baton::testing::AtMostOnce(lost));
  EXPECT_EQ(lost.last().http_status, 200) << lost;
  EXPECT_EQ(CheckInvariants(), 2);
}

TEST_P(ReservationsTest, CancelFreesTheSeatsOnce) {
  auto r = h_.Send(Reserve("k3", "ada", "[1,2]"));
  ASSERT_EQ(r.last().http_status, 200);
  const std::string id = IdOf(r.last());
  auto cancel = h_.LoseReplyThenRetry(
      baton::testing::Delete("/reservations/" + id).Key("cancel-" + id));
  EXPECT_TRUE(baton::testing::ExactlyOnce(cancel));
  EXPECT_EQ(cancel.last().http_status, 200) << cancel;
  EXPECT_EQ(h_.Value("seat/hamlet/00001"), std::nullopt);
  // The seats can be booked again.
  EXPECT_EQ(h_.Send(Reserve("k4", "bob", "[1]")).last().http_status, 200);
  EXPECT_EQ(CheckInvariants(), 1);
}

TEST_P(ReservationsTest, BadRequestsAreRefusedAndChangeNothing) {
  struct Case {
    std::string body;
    int status;
  } cases[] = {
      {R"({"customer":"ada","seats":[0]})", 400},
      {R"({"customer":"ada","seats":[21]})", 400},
      {R"({"customer":"ada","seats":[3,3]})", 400},
      {R"({"customer":"ada","seats":[]})", 400},
      {R"({"customer":"ada"})", 400},
      {R"({"seats":[1]})", 400},
      {"[1]", 400},
      {"{\"customer\":\"ada\",\"seats\":" + std::string(5000, '[') +
           std::string(5000, ']') + "}",
       400},
  };
  int n = 0;
  for (const Case& c : cases) {
    auto r = h_.Send(baton::testing::Post("/shows/hamlet/reservations", c.body)
                         .Key(absl::StrCat("bad", n++)));
    EXPECT_EQ(r.last().http_status, c.status) << c.body.substr(0, 80) << r;
  }
  auto none = h_.Send(baton::testing::Post("/shows/nope/reservations",
                                           R"({"customer":"a","seats":[1]})")
                          .Key("nope"));
  EXPECT_EQ(none.last().http_status, 404);
  EXPECT_EQ(CheckInvariants(), 0);
}

// Many requests with random faults, retried as a client would: afterwards
// the invariants hold and every request that got a reply got one booking.
TEST_P(ReservationsTest, InvariantsHoldUnderRandomFaults) {
  using baton::testing::Fault;
  std::mt19937 rng(GetParam() * 7919 + 1);
  std::set<std::string> booked_ids;
  for (int i = 0; i < 60; ++i) {
    const int a = 1 + static_cast<int>(rng() % 20);
    const int b = 1 + static_cast<int>(rng() % 20);
    const std::string seats =
        a == b ? absl::StrCat("[", a, "]") : absl::StrCat("[", a, ",", b, "]");
    std::vector<Fault> faults;
    switch (rng() % 5) {
      case 0: faults = {Fault::UnknownApplied()}; break;
      case 1: faults = {Fault::UnknownNotApplied()}; break;
      case 2: faults = {Fault::Unavailable()}; break;
      case 3: faults = {Fault::Conflict()}; break;
      default: break;
    }
    auto r = h_.SendWithFaults(Reserve(absl::StrCat("r", i), "c", seats),
                               faults, 5);
    EXPECT_TRUE(baton::testing::AtMostOnce(r)) << r;
    if (r.last().http_status == 200) booked_ids.insert(IdOf(r.last()));
    if (rng() % 4 == 0 && !booked_ids.empty()) {
      const std::string id = *booked_ids.begin();
      auto c = h_.SendWithFaults(
          baton::testing::Delete("/reservations/" + id).Key("x" + id),
          {Fault::UnknownApplied()}, 5);
      EXPECT_TRUE(baton::testing::AtMostOnce(c)) << c;
      if (c.last().http_status == 200) booked_ids.erase(id);
    }
  }
  EXPECT_EQ(CheckInvariants(), static_cast<int>(booked_ids.size()));
}

INSTANTIATE_TEST_SUITE_P(Modes, ReservationsTest, ::testing::Values(0, 1),
                         [](const auto& info) {
                           return info.param == 0 ? std::string("Inline")
                                                  : std::string("BlockingStale");
                         });

// The whole service in a real server (HTTP and gRPC on one in-memory store):
// a gRPC retry is answered from the stored reply, flagged as a replay; a
// refusal carries its code and `baton-error` name; HTTP sees gRPC's booking.
TEST(ReservationsServerTest, GrpcRetriesReplayAndBothFrontEndsShareTheStore) {
  namespace pb = ::reservations::v1;
  baton::framework::ServerConfig c =
      baton::framework::DefaultServerConfig("reservations");
  c.http.port = 0;
  c.grpc_enabled = true;
  c.grpc.port = 0;
  c.admin.enabled = false;
  c.store.kind = baton::framework::StoreConfig::Kind::kMemory;
  baton::framework::ServiceDefinition service("reservations");
  Define(service);
  auto server = baton::framework::Server::Start(c, std::move(service));
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = pb::Reservations::NewStub(grpc::CreateChannel(
      (*server)->grpc_address(), grpc::InsecureChannelCredentials()));
  auto call = [&](const std::string& key, auto method, const auto& request,
                  auto* response, bool* replayed) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("idempotency-key", key);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Status st = ((*stub).*method)(&ctx, request, response);
    auto it = ctx.GetServerTrailingMetadata().find("idempotent-replayed");
    *replayed = it != ctx.GetServerTrailingMetadata().end();
    auto err = ctx.GetServerTrailingMetadata().find("baton-error");
    if (!st.ok() && err != ctx.GetServerTrailingMetadata().end()) {
      return std::make_pair(st, std::string(err->second.data(), err->second.size()));
    }
    return std::make_pair(st, std::string());
  };
  bool replayed = false;
  pb::CreateShowRequest create;
  create.set_id("ballet");
  create.set_name("Giselle");
  create.set_seats(8);
  pb::Show show;
  ASSERT_TRUE(call("create", &pb::Reservations::Stub::CreateShow, create, &show,
                   &replayed).first.ok());
  pb::ReserveRequest reserve;
  reserve.set_show("ballet");
  reserve.set_customer("ada");
  reserve.add_seats(2);
  reserve.add_seats(3);
  pb::Reservation first, again;
  ASSERT_TRUE(call("book", &pb::Reservations::Stub::Reserve, reserve, &first,
                   &replayed).first.ok());
  EXPECT_FALSE(replayed);
  ASSERT_TRUE(call("book", &pb::Reservations::Stub::Reserve, reserve, &again,
                   &replayed).first.ok());
  EXPECT_TRUE(replayed);
  EXPECT_EQ(again.id(), first.id());
  reserve.set_customer("bob");
  pb::Reservation refused;
  auto [status, name] = call("book-bob", &pb::Reservations::Stub::Reserve,
                             reserve, &refused, &replayed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(name, "failed_precondition");
  // HTTP sees the booking made over gRPC.
  const std::string http = (*server)->http_address();
  const std::string cmd = "curl -s http://" + http + "/reservations/" + first.id();
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string body;
  char buf[512];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) body.append(buf, n);
  ::pclose(p);
  EXPECT_NE(body.find("\"customer\":\"ada\""), std::string::npos) << body;
}

}  // namespace
}  // namespace reservations
