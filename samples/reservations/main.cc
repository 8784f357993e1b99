// The reservations service: its routes and methods, and baton's server entry
// point for everything else (config, store, listeners, operator plane,
// take-over agent). Run: reservations --listen 127.0.0.1:8090
#include "framework/server.h"
#include "reservations.h"

int main(int argc, char** argv) {
  baton::framework::ServiceDefinition service("reservations");
  reservations::Define(service);
  return baton::framework::ServerMain(argc, argv, std::move(service));
}
