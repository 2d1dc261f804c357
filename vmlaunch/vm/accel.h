// The QEMU accelerator for `--accel auto`: KVM when the host has /dev/kvm *and* a guest really
// boots under it, TCG otherwise. Some hosts (nested virtualisation, as on our CI machines) have
// a /dev/kvm on which a guest stalls; only a real boot tells, so the first `auto` probes once
// with one (bounded by a timeout), says what it found, and caches the answer in
// <state>/accel.json for that image. Single-threaded.
#pragma once

#include <ostream>
#include <string>

#include "gateway/base/status.h"
#include "vmlaunch/image/image_builder.h"

namespace airlock::vmlaunch {

Result<std::string> ResolveAccel(const std::string& requested, const Image& image,
                                 const std::string& state_dir, std::ostream& log);

}  // namespace airlock::vmlaunch
