// SPDX-License-Identifier: MIT
// doctor_appointments: threads waiting on a weft::Condition until the state they need holds.
// A port of the Python threading.Condition "doctor's appointments" example: patients John
// and Mary wait in the waiting room; the doctor checks the schedule, then calls them in with
// notify_all().
#include <algorithm>
#include <chrono>
#include <iostream>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <weft/condition.hpp>

#include "demo.hpp"

using namespace std::chrono_literals;
using demo::nap;
using demo::say;

constexpr std::string_view kAbout =
    "Patients wait on a weft::Condition until the doctor calls them in with notify_all().";
constexpr double kDefaultTimeScale = 0.5;  // the original's 2 s in 1 s

namespace {

weft::Condition condition;  // owns an RLock, as threading.Condition() does
// Guarded by condition:
bool doctor_ready = false;
int patients_waiting = 0;
std::vector<std::string> seen;  // patients who saw the doctor

void patient(const std::string& name) {
  std::unique_lock lock(condition);  // Python: with condition:
  say(name + ": Waiting for the doctor...");
  ++patients_waiting;
  condition.notify_all();  // for main, which seats the patients one by one
  // The original's bare wait() would sleep forever had the doctor called before this
  // patient arrived; waiting for the state itself cannot miss the call.
  condition.wait_for([] { return doctor_ready; });
  say(name + ": Seeing the doctor.");
  seen.push_back(name);
}

void doctor() {
  say("Doctor: Checking the schedule...");
  nap(2s);  // busy, but without holding the lock: nobody waits for it meanwhile
  std::unique_lock lock(condition);
  say("Doctor: Ready, calling the patients.");
  doctor_ready = true;
  condition.notify_all();
}

}  // namespace

int main(int argc, char** argv) {
  if (auto exit_status = demo::parse_command_line(argc, argv, kAbout, kDefaultTimeScale)) {
    return *exit_status;
  }

  const std::vector<std::string> names = {"John", "Mary"};
  std::vector<std::jthread> patients;
  for (const std::string& name : names) {
    patients.emplace_back(patient, name);
    // Seat each patient before the next one comes in, so that they speak in a fixed order.
    std::unique_lock lock(condition);
    condition.wait_for([&] { return patients_waiting == static_cast<int>(patients.size()); });
  }
  std::jthread doctor_thread(doctor);

  doctor_thread.join();
  for (std::jthread& p : patients) p.join();

  // The arrivals and the doctor's lines come in a fixed order; after them, each patient sees
  // the doctor exactly once, in whichever order notify_all() let them take the lock.
  std::vector<std::string> expected = {
      "John: Waiting for the doctor...",
      "Mary: Waiting for the doctor...",
      "Doctor: Checking the schedule...",
      "Doctor: Ready, calling the patients.",
  };
  for (const std::string& name : seen) expected.push_back(name + ": Seeing the doctor.");
  if (!std::is_permutation(seen.begin(), seen.end(), names.begin(), names.end()) ||
      demo::printed_lines() != expected) {
    std::cerr << "doctor_appointments: FAILED: unexpected lines or patients left unseen\n";
    return 1;
  }
  return 0;
}
