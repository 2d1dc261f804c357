// A sig_atomic_t set by the handlers; no SA_RESTART, so blocking calls return EINTR.
#include "vmlaunch/process/interrupt.h"

#include <signal.h>

#include <initializer_list>

namespace airlock::vmlaunch {
namespace {

volatile sig_atomic_t g_signal = 0;

void OnSignal(int sig) { g_signal = sig; }

}  // namespace

void InstallInterruptHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

bool Interrupted() { return g_signal != 0; }
int InterruptSignal() { return g_signal; }

}  // namespace airlock::vmlaunch
