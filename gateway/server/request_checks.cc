// Request targets, Host against SNI, and decisions: pure functions (see request_checks.h).
#include "gateway/server/request_checks.h"

#include "gateway/net/host.h"

namespace airlock::server {
namespace {

Refusal Refuse(int status, std::string reason, std::string message, std::string hint) {
  return Refusal{status, std::move(reason), std::move(message), std::move(hint)};
}

Refusal SniMismatch() {
  return Refuse(421, "host_sni_mismatch",
                "the request names another host than the TLS connection it was sent on",
                "open a new connection for each host; Host must equal the TLS server name");
}

// Splits an absolute-form URL after its scheme into authority and origin-form target.
std::optional<Refusal> SplitUrl(std::string_view rest, std::string_view* authority,
                                std::string* origin_target) {
  size_t end = rest.find_first_of("/?#");
  *authority = rest.substr(0, end);
  if (authority->find('@') != std::string_view::npos) {
    return Refuse(400, "userinfo_in_url", "URLs with user:password@ are refused",
                  "remove the credentials from the URL");
  }
  std::string_view path = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (path.find('#') != std::string_view::npos) {
    return Refuse(400, "bad_url", "a fragment in a request target", "remove the #fragment");
  }
  *origin_target =
      path.empty() || path.front() == '?' ? "/" + std::string(path) : std::string(path);
  return std::nullopt;
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && http::EqualsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

std::optional<Refusal> ParseProxyTarget(const http::HttpHead& h, Target* t) {
  std::string_view target = h.target;
  constexpr std::string_view kScheme = "http://";
  if (!StartsWithIgnoreCase(target, kScheme)) {
    return Refuse(400, "not_absolute_form",
                  target.starts_with("/")
                      ? "a proxy request needs an absolute URL (http://host/path)"
                      : "only http:// URLs are forwarded; use CONNECT for https",
                  "set HTTP_PROXY/HTTPS_PROXY so that clients send absolute-form requests and "
                  "CONNECT");
  }
  std::string_view authority;
  if (auto r = SplitUrl(target.substr(kScheme.size()), &authority, &t->origin_target)) return r;
  if (!SplitAuthority(authority, 80, &t->host, &t->port)) {
    return Refuse(400, "bad_url", "the URL's host or port is malformed", "check the URL");
  }
  if (const std::string* host_header = h.Find("Host")) {
    std::string hh;
    uint16_t hp = 0;
    if (!SplitAuthority(*host_header, 80, &hh, &hp) || !http::EqualsIgnoreCase(hh, t->host) ||
        hp != t->port) {
      return Refuse(400, "host_mismatch", "the Host header names another host than the URL",
                    "send a Host header equal to the URL's authority, or none");
    }
  }
  return std::nullopt;
}

std::optional<Refusal> ParseCapturedTarget(const http::HttpHead& h, uint16_t port, Target* t) {
  const std::string* host_header = h.Find("Host");
  uint16_t hp = 0;
  if (!h.target.starts_with("/") || !host_header ||
      !SplitAuthority(*host_header, port, &t->host, &hp) || hp != port) {
    return Refuse(400, "host_mismatch", "a captured HTTP request needs a Host header for its port",
                  "send Host: name[:port] matching the destination");
  }
  t->port = port;
  t->origin_target = h.target;
  return std::nullopt;
}

std::optional<Refusal> ParseInspectedTarget(const http::HttpHead& h, const TargetContext& c,
                                            Target* t) {
  const std::string* host_header = h.Find("Host");
  if (!host_header) {
    return Refuse(400, "host_missing", "a request inside TLS needs a Host header",
                  "send Host: the name the TLS connection was opened for");
  }
  if (!AuthorityMatchesSni(*host_header, c.sni, c.port)) return SniMismatch();
  constexpr std::string_view kScheme = "https://";
  if (StartsWithIgnoreCase(h.target, kScheme)) {
    std::string_view authority;
    std::string_view rest = std::string_view(h.target).substr(kScheme.size());
    if (auto r = SplitUrl(rest, &authority, &t->origin_target)) return r;
    if (!AuthorityMatchesSni(authority, c.sni, c.port)) return SniMismatch();
  } else if (h.target.starts_with("/")) {
    t->origin_target = h.target;
  } else {
    return Refuse(400, "bad_request_target", "the request target must be a path (/...)",
                  "send origin-form requests: GET /path HTTP/1.1");
  }
  t->host = std::string(c.sni);
  t->port = c.port;
  return std::nullopt;
}

}  // namespace

bool SplitAuthority(std::string_view a, uint16_t default_port, std::string* host, uint16_t* port) {
  std::string_view h = a;
  std::string_view p;
  if (!a.empty() && a.front() == '[') {
    size_t close = a.find(']');
    if (close == std::string_view::npos) return false;
    h = a.substr(0, close + 1);
    std::string_view rest = a.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      p = rest.substr(1);
      if (p.empty()) return false;
    }
  } else {
    size_t colon = a.rfind(':');
    if (colon != std::string_view::npos) {
      h = a.substr(0, colon);
      p = a.substr(colon + 1);
      if (p.empty()) return false;
    }
  }
  if (h.empty()) return false;
  *host = std::string(h);
  if (p.empty()) {
    *port = default_port;
    return default_port != 0;
  }
  int v = 0;
  for (char c : p) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
    if (v > 65535) return false;
  }
  if (v == 0) return false;
  *port = static_cast<uint16_t>(v);
  return true;
}

bool AuthorityMatchesSni(std::string_view authority, std::string_view sni, uint16_t port) {
  std::string host;
  uint16_t p = 0;
  return SplitAuthority(authority, port, &host, &p) && p == port && SameHost(host, sni);
}

bool SameHost(std::string_view a, std::string_view b) {
  if (a == b) return net::NormalizeHost(a).error == net::HostError::kNone;  // the usual case
  net::NormalizedHost na = net::NormalizeHost(a);
  net::NormalizedHost nb = net::NormalizeHost(b);
  return na.error == net::HostError::kNone && nb.error == net::HostError::kNone &&
         na.name == nb.name;
}

std::optional<Refusal> ParseTarget(const http::HttpHead& head, const TargetContext& context,
                                   Target* target) {
  *target = Target{};
  if (head.method == "CONNECT") {
    if (context.form != TargetForm::kProxy) {
      return Refuse(405, "method_not_allowed", "CONNECT is only for the proxy port",
                    "send ordinary requests on this connection");
    }
    target->tunnel = true;
    target->protocol = policy::Protocol::kTls;
    if (!SplitAuthority(head.target, 0, &target->host, &target->port)) {
      return Refuse(400, "bad_connect_target", "CONNECT needs host:port", "use CONNECT host:port");
    }
    return std::nullopt;
  }
  switch (context.form) {
    case TargetForm::kProxy:
      target->protocol = policy::Protocol::kHttp;
      return ParseProxyTarget(head, target);
    case TargetForm::kCaptured:
      target->protocol = policy::Protocol::kHttp;
      return ParseCapturedTarget(head, context.port, target);
    case TargetForm::kInspected:
      target->protocol = policy::Protocol::kTls;
      return ParseInspectedTarget(head, context, target);
  }
  return std::nullopt;
}

policy::Decision DecideTarget(const policy::PolicySet& policies, const DecisionContext& context,
                              const Target& target, std::string_view method,
                              std::optional<net::IpAddress> address) {
  policy::Request r;
  r.session = context.session;
  r.policy = context.policy;
  r.usage = context.usage;
  r.host = target.host;
  r.port = target.port;
  r.protocol = target.protocol;
  r.address = address;
  if (!method.empty()) r.http = policy::HttpRequestInfo{method, target.origin_target};
  return policy::Decide(policies, r);
}

Refusal RefusalFor(const policy::Decision& decision, const Target& target) {
  return Refuse(403, std::string(policy::ReasonName(decision.reason)),
                "airlock denied " + std::string(target.tunnel ? "CONNECT to " : "the request to ") +
                    target.host + ":" + std::to_string(target.port),
                std::string(policy::ReasonHint(decision.reason)));
}

}  // namespace airlock::server
