// The gateway's CA: loading, first-start generation, and the checks on both (see
// certificate_authority.h).
#include "gateway/tls/certificate_authority.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "gateway/crypto/random.h"
#include "gateway/tls/x509_builder.h"

namespace airlock::tls {
namespace {

using std::chrono::hours;
using std::chrono::system_clock;

constexpr auto kCaLifetime = hours(24 * 365 * 10);

std::string Errno() { return std::strerror(errno); }

// Writes `data` to `path` through a temporary file and a rename, with `mode`.
Status WriteFileAtomically(const std::string& path, const std::string& data, mode_t mode) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return Status::Error("cannot create " + tmp + ": " + Errno());
  bool ok = ::fchmod(fd, mode) == 0 &&
            ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) &&
            ::fsync(fd) == 0;
  std::string err = ok ? "" : Errno();
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Status::Error("cannot write " + path + ": " + (ok ? Errno() : err));
  }
  return Status::Ok();
}

Status Generate(const std::string& cert_path, const std::string& key_path) {
  EvpPkeyPtr key = NewP256Key();
  if (!key) return Status::Error("cannot generate the CA key: " + TakeOpenSslErrors());
  X509NamePtr name(X509_NAME_new());
  std::string cn = "Airlock gateway CA " + crypto::RandomHex(4);
  X509_NAME_add_entry_by_txt(name.get(), "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Airlock"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  auto now = system_clock::now();
  auto cert = NewCertificate(key.get(), name.get(), nullptr, now - hours(1), now + kCaLifetime);
  if (!cert.ok()) return cert.status();
  X509* c = cert.value().get();
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                            {NID_key_usage, "critical,keyCertSign,cRLSign"},
                            {NID_subject_key_identifier, "hash"},
                            {NID_authority_key_identifier, "keyid:always"}}) {
    if (Status s = AddExtension(c, nullptr, nid, value); !s.ok()) return s;
  }
  if (Status s = Sign(c, key.get()); !s.ok()) return s;

  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return Status::Error("cannot encode the CA key: " + TakeOpenSslErrors());
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  std::string key_pem(data, static_cast<size_t>(n));
  // The key first: a certificate on disk always has its key beside it.
  if (Status s = WriteFileAtomically(key_path, key_pem, 0600); !s.ok()) return s;
  OPENSSL_cleanse(key_pem.data(), key_pem.size());
  return WriteFileAtomically(cert_path, ToPem(c), 0644);
}

Result<std::string> ReadSmallFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error("cannot read " + path + ": " + Errno());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0 && out.size() < (1 << 20)) {
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (n < 0) return Status::Error("cannot read " + path + ": " + Errno());
  return out;
}

}  // namespace

std::string GeneratedCaCertPath(const std::string& state_dir) { return state_dir + "/ca.crt"; }
std::string GeneratedCaKeyPath(const std::string& state_dir) { return state_dir + "/ca.key"; }

CertificateAuthority::CertificateAuthority(X509Ptr cert, EvpPkeyPtr key, std::string pem)
    : cert_(std::move(cert)), key_(std::move(key)), pem_(std::move(pem)) {}

Result<std::unique_ptr<CertificateAuthority>> CertificateAuthority::LoadOrCreate(
    const CaOptions& o) {
  if (o.cert_file.empty() != o.key_file.empty()) {
    return Status::Error("tls: ca_cert and ca_key go together: give both or neither");
  }
  std::string cert_path = o.cert_file;
  std::string key_path = o.key_file;
  if (cert_path.empty()) {
    cert_path = GeneratedCaCertPath(o.state_dir);
    key_path = GeneratedCaKeyPath(o.state_dir);
    std::error_code ec;
    std::filesystem::create_directories(o.state_dir, ec);
    // One generator at a time (the gateway and airlockctl may start together).
    std::string lock_path = o.state_dir + "/ca.lock";
    int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0) return Status::Error("cannot open " + lock_path + ": " + Errno());
    ::flock(lock, LOCK_EX);
    Status s;
    if (::access(key_path.c_str(), F_OK) != 0) s = Generate(cert_path, key_path);
    ::close(lock);
    if (!s.ok()) return s;
  }
  struct stat st {};
  if (::stat(key_path.c_str(), &st) != 0) {
    return Status::Error("cannot read the CA key " + key_path + ": " + Errno());
  }
  if (st.st_mode & 077) {
    return Status::Error("the CA key " + key_path +
                         " is readable by others than its owner; chmod 600 it");
  }
  auto cert_pem = ReadSmallFile(cert_path);
  if (!cert_pem.ok()) return cert_pem.status();
  auto key_pem = ReadSmallFile(key_path);
  if (!key_pem.ok()) return key_pem.status();
  BioPtr cbio(BIO_new_mem_buf(cert_pem->data(), static_cast<int>(cert_pem->size())));
  X509Ptr cert(PEM_read_bio_X509(cbio.get(), nullptr, nullptr, nullptr));
  if (!cert) return Status::Error(cert_path + " holds no PEM certificate");
  BioPtr kbio(BIO_new_mem_buf(key_pem->data(), static_cast<int>(key_pem->size())));
  // No pass phrase: an encrypted key is refused instead of prompting on a terminal.
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(
      kbio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr));
  OPENSSL_cleanse(key_pem.value().data(), key_pem->size());
  ERR_clear_error();
  if (!key) return Status::Error(key_path + " holds no PEM private key (or it is encrypted)");
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return Status::Error("the CA key " + key_path + " does not match " + cert_path);
  }
  if (X509_check_ca(cert.get()) < 1) {
    return Status::Error(cert_path + " is not a CA certificate (basicConstraints CA:TRUE)");
  }
  std::string pem = ToPem(cert.get());
  return std::unique_ptr<CertificateAuthority>(
      new CertificateAuthority(std::move(cert), std::move(key), std::move(pem)));
}

}  // namespace airlock::tls
