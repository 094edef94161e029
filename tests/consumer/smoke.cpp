// Smoke test for a project that consumes weft: one thread sets an Event, main waits on it.
#include <weft/weft.hpp>

#include <chrono>
#include <cstdio>
#include <thread>

int main() {
  using namespace std::chrono_literals;
  weft::Event ready;
  std::thread setter([&ready] { ready.set(); });
  const bool woke = ready.wait(30s);
  setter.join();
  if (!woke || !ready.is_set()) {
    std::puts("weft consumer: FAILED (event not observed)");
    return 1;
  }
  std::puts("weft consumer: ok");
  return 0;
}
