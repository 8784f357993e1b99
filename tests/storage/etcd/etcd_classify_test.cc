// How the etcd backend reads a failed RPC: which failures may be retried on
// another endpoint, which make a commit's outcome unknown, which are final.
// Getting this wrong either re-sends a commit that may have been applied
// (double execution) or gives up on one that was surely not; no etcd needed.
#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "storage/etcd/etcd_client.h"

namespace baton::storage::etcd_internal {
namespace {

grpc::Status S(grpc::StatusCode code, const char* msg) { return grpc::Status(code, msg); }

TEST(EtcdClassifyTest, NotConnectedIsSafeToSendElsewhere) {
  for (CallKind kind : {CallKind::kRead, CallKind::kWrite}) {
    EXPECT_EQ(Classify(S(grpc::StatusCode::UNAVAILABLE,
                         "failed to connect to all addresses; last error: UNKNOWN: "
                         "ipv4:127.0.0.1:1: Failed to connect to remote host: Connection refused"),
                       kind),
              FailureClass::kNotApplied);
    EXPECT_EQ(Classify(S(grpc::StatusCode::UNAVAILABLE, "etcdserver: no leader"), kind),
              FailureClass::kNotApplied);
    EXPECT_EQ(Classify(S(grpc::StatusCode::RESOURCE_EXHAUSTED, "etcdserver: too many requests"),
                       kind),
              FailureClass::kNotApplied);
  }
}

TEST(EtcdClassifyTest, SentWriteWithoutAnswerIsUnknownButReadMovesOn) {
  const grpc::Status sent[] = {
      S(grpc::StatusCode::UNAVAILABLE, "Socket closed"),
      S(grpc::StatusCode::UNAVAILABLE, "etcdserver: request timed out"),
      S(grpc::StatusCode::UNAVAILABLE,
        "etcdserver: request timed out, possibly due to previous leader failure"),
      S(grpc::StatusCode::UNAVAILABLE, "etcdserver: leader changed"),
      S(grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded"),
      S(grpc::StatusCode::CANCELLED, "Cancelled"),
  };
  for (const grpc::Status& s : sent) {
    EXPECT_EQ(Classify(s, CallKind::kWrite), FailureClass::kUnknown) << s.error_message();
    EXPECT_EQ(Classify(s, CallKind::kRead), FailureClass::kNotApplied) << s.error_message();
  }
}

TEST(EtcdClassifyTest, ExpiredTokenIsRefreshed) {
  EXPECT_EQ(Classify(S(grpc::StatusCode::UNAUTHENTICATED, "etcdserver: invalid auth token"),
                     CallKind::kWrite),
            FailureClass::kBadToken);
}

TEST(EtcdClassifyTest, DefiniteAnswersAreFinalAndMapped) {
  const grpc::Status too_large =
      S(grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: request is too large");
  EXPECT_EQ(Classify(too_large, CallKind::kWrite), FailureClass::kFinal);
  EXPECT_EQ(FinalStatus(too_large, "h:1").code(), absl::StatusCode::kResourceExhausted);

  const grpc::Status nospace =
      S(grpc::StatusCode::RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded");
  EXPECT_EQ(Classify(nospace, CallKind::kWrite), FailureClass::kFinal);
  EXPECT_EQ(FinalStatus(nospace, "h:1").code(), absl::StatusCode::kUnavailable);

  const grpc::Status denied =
      S(grpc::StatusCode::PERMISSION_DENIED, "etcdserver: permission denied");
  EXPECT_EQ(Classify(denied, CallKind::kWrite), FailureClass::kFinal);
  absl::Status mapped = FinalStatus(denied, "h:1");
  EXPECT_EQ(mapped.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(mapped.message().find("h:1"), absl::string_view::npos) << "names the endpoint";
}

}  // namespace
}  // namespace baton::storage::etcd_internal
