#include "bench/lib/machine_load.h"

#include <sched.h>
#include <sys/resource.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_format.h"

namespace baton::bench {

LoadAverage ReadLoadAverage() {
  LoadAverage load;
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf %lf %lf", &load.one, &load.five, &load.fifteen) !=
        3) {
      load = LoadAverage{};
    }
    std::fclose(f);
  }
  return load;
}

int OnlineCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  const int n = CPU_COUNT(&set);
  return n > 0 ? n : 1;
}

double ProcessCpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

bool MachineBusy(const LoadAverage& load, double busy_fraction) {
  return load.one > busy_fraction * OnlineCpus();
}

std::string DescribeLoad(std::string_view when, const LoadAverage& load,
                         double busy_fraction) {
  std::string out = absl::StrFormat(
      "load average %s: %.2f %.2f %.2f on %d CPUs",
      absl::string_view(when.data(), when.size()), load.one, load.five,
      load.fifteen, OnlineCpus());
  if (MachineBusy(load, busy_fraction)) {
    absl::StrAppendFormat(
        &out,
        "\nWARNING: the machine is busy (one-minute load %.2f > %.1f x %d "
        "CPUs): rates and latencies are not comparable with a quiet "
        "machine's; quote ratios and CPU per operation, or rerun when quiet",
        load.one, busy_fraction, OnlineCpus());
  }
  return out;
}

MachineLoadCheck::MachineLoadCheck(double busy_fraction)
    : busy_fraction_(busy_fraction), before_(ReadLoadAverage()) {}

void MachineLoadCheck::Finish() {
  after_ = ReadLoadAverage();
  finished_ = true;
}

std::string MachineLoadCheck::DescribeBefore() const {
  return DescribeLoad("before", before_, busy_fraction_);
}

std::string MachineLoadCheck::DescribeAfter() const {
  return DescribeLoad("after", after_, busy_fraction_);
}

bool MachineLoadCheck::Busy() const {
  return MachineBusy(before_, busy_fraction_) ||
         (finished_ && MachineBusy(after_, busy_fraction_));
}

nlohmann::json MachineLoadCheck::ToJson() const {
  return {{"loadavg_before", {before_.one, before_.five, before_.fifteen}},
          {"loadavg_after", {after_.one, after_.five, after_.fifteen}},
          {"busy", Busy()},
          {"cpus", OnlineCpus()}};
}

}  // namespace baton::bench
