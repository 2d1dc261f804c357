// Interrupt: SIGINT, SIGTERM and SIGHUP become a flag that long waits (a guest booting, an exec
// running, the monitor's loop) check between short slices, so that a signal always leads to an
// orderly teardown instead of a process that dies holding taps and leases. Process-wide;
// async-signal-safe.
#pragma once

namespace airlock::vmlaunch {

void InstallInterruptHandlers();
bool Interrupted();
// The signal that set the flag (0 if none).
int InterruptSignal();

}  // namespace airlock::vmlaunch
