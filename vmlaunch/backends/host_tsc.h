// The host's TSC rate, for TCG guests. Under TCG the guest's TSC is the host's TSC, but the guest
// kernel cannot measure its rate reliably: its fast PIT calibration needs the emulated PIT and the
// vCPU to run in step, and on a busy host they do not. A kernel that fails to calibrate marks the
// TSC unstable and then hangs before init (no console output at all). Telling it the rate on its
// command line (`tsc_early_khz=`) removes the calibration. Thread-safe (measured once).
#pragma once

#include <cstdint>
#include <string>

namespace airlock::vmlaunch {

// The TSC rate in kHz, measured once against CLOCK_MONOTONIC_RAW; 0 where the host's TSC is not
// invariant (no constant_tsc and nonstop_tsc in `cpuinfo`) or not x86.
int64_t HostTscKhz();

// True if a /proc/cpuinfo text says the TSC runs at a constant rate through all power states.
bool TscIsInvariant(const std::string& cpuinfo);

}  // namespace airlock::vmlaunch
