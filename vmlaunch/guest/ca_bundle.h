// The CA bundle a microVM trusts, and where it lives: the guest's system roots, the CA its image
// was built with, and the gateway's CA, one after another. The guest agent assembles it in the
// guest (the `trust` request), so only the gateway's CA crosses the channel; the host's netns
// sandboxes use the same function. Pure; any thread.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

namespace airlock::vmlaunch {

// Where Debian (and the guest's root disk) keep the system's root certificates.
inline constexpr std::string_view kSystemRoots = "/etc/ssl/certs/ca-certificates.crt";
// Where the bundle goes inside a microVM (also where `image build --ca-cert` puts its CA).
inline constexpr std::string_view kGuestCaPath = "/etc/airlock/ca.crt";

// The PEM texts one after another, each ending in a newline; empty parts are left out, and so is
// a part that repeats an earlier one (an image whose baked CA is the gateway's own).
std::string CaBundle(std::initializer_list<std::string_view> parts);

}  // namespace airlock::vmlaunch
