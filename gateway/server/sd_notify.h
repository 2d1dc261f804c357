// SdNotify(): tells systemd what the service is doing (READY=1, RELOADING=1, STOPPING=1,
// STATUS=...) over $NOTIFY_SOCKET, the protocol of sd_notify(3), without linking libsystemd.
// Does nothing when systemd did not start the gateway. Any thread.
#pragma once

#include <string_view>

namespace airlock::server {

void SdNotify(std::string_view state);

}  // namespace airlock::server
