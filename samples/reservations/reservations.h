// A seat-reservation service: shows with numbered seats, reservations of
// several seats at once, cancellations. A double execution would be visible
// here: a seat booked twice, or two reservations for one request. baton makes
// every request exactly-once (a retry after a crash or a lost reply gets the
// reservation the first attempt made, with the same id), so the invariants
// below hold whatever the network and the hosts do:
//   - a seat belongs to at most one reservation;
//   - a reservation's seats all point back to it; a cancelled reservation
//     holds no seat;
//   - one request (one idempotency key) makes at most one reservation.
//
// The operations work on plain values inside a baton Transaction; the HTTP
// routes (JSON) and the gRPC methods (proto/reservations.proto) are thin
// adapters over them.
#ifndef RESERVATIONS_RESERVATIONS_H_
#define RESERVATIONS_RESERVATIONS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "framework/server.h"
#include "framework/transaction.h"

namespace reservations {

struct Show {
  std::string id;
  std::string name;
  int seats = 0;
  std::vector<int> taken;  // Seat numbers (1..seats), ascending.
};

struct Reservation {
  std::string id;  // "r-" and 16 hex digits, chosen at random.
  std::string show;
  std::string customer;
  std::vector<int> seats;  // Ascending.
};

// Errors: kInvalidArgument (bad id, name or seat count: 1..10000),
// kAlreadyExists (a show with that id).
absl::StatusOr<Show> CreateShow(baton::framework::Transaction& txn,
                                const std::string& id, const std::string& name,
                                int seats);
// kNotFound.
absl::StatusOr<Show> GetShow(baton::framework::Transaction& txn,
                             const std::string& id);
// Books every seat in `seats` (1..16 distinct seat numbers) for `customer`,
// or none. kNotFound (no show), kInvalidArgument, kFailedPrecondition naming
// the seats already taken.
absl::StatusOr<Reservation> Reserve(baton::framework::Transaction& txn,
                                    const std::string& show,
                                    const std::string& customer,
                                    std::vector<int> seats);
// Frees the reservation's seats. kNotFound.
absl::StatusOr<Reservation> Cancel(baton::framework::Transaction& txn,
                                   const std::string& reservation);
// kNotFound.
absl::StatusOr<Reservation> GetReservation(baton::framework::Transaction& txn,
                                           const std::string& reservation);

// Adds the HTTP routes (reservations.cc lists them) and the gRPC methods of
// proto/reservations.proto to `service`.
void Define(baton::framework::ServiceDefinition& service);

}  // namespace reservations

#endif  // RESERVATIONS_RESERVATIONS_H_
