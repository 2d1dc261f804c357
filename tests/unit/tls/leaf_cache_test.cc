// The gateway's CA and its leaf certificates: generation and reuse of the CA (key mode 0600),
// refusal of unusable CA files, and leaves that strict X.509 verification accepts (SAN, AKI, SKI,
// validity, serial), cached per name, minted again before expiry, minted once under concurrency.
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "gateway/tls/certificate_authority.h"
#include "gateway/tls/leaf_cache.h"

namespace airlock::tls {
namespace {

namespace fs = std::filesystem;
using std::chrono::hours;
using std::chrono::system_clock;

class FakeClock : public Clock {
 public:
  system_clock::time_point Now() const override { return now; }
  system_clock::time_point now = system_clock::now();
};

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/airlock-tls-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string path;
};

std::unique_ptr<CertificateAuthority> MakeCa(const std::string& dir) {
  auto ca = CertificateAuthority::LoadOrCreate({"", "", dir});
  EXPECT_TRUE(ca.ok()) << ca.status().message();
  return ca.ok() ? std::move(ca).value() : nullptr;
}

// Verifies `leaf` against `ca` as a strict client would, for `name` (a DNS name or an IP).
long Verify(X509* ca, X509* leaf, const std::string& name, time_t at) {
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, leaf, nullptr);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx);
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT | X509_V_FLAG_USE_CHECK_TIME);
  X509_VERIFY_PARAM_set_time(param, at);
  X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
  if (X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) != 1) {
    X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
  }
  X509_verify_cert(ctx);
  long result = X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return result;
}

std::string Extension(X509* cert, int nid) {
  int at = X509_get_ext_by_NID(cert, nid, -1);
  if (at < 0) return "";
  BIO* bio = BIO_new(BIO_s_mem());
  X509V3_EXT_print(bio, X509_get_ext(cert, at), 0, 0);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

TEST(CertificateAuthorityTest, GeneratedOnceWithAPrivateKeyAndReused) {
  TempDir dir;
  auto first = MakeCa(dir.path);
  ASSERT_TRUE(first);
  struct stat st {};
  ASSERT_EQ(stat(GeneratedCaKeyPath(dir.path).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_NE(first->certificate_pem().find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_EQ(first->certificate_pem().find("PRIVATE"), std::string::npos);
  EXPECT_EQ(X509_check_ca(first->certificate()), 1);
  EXPECT_NE(Extension(first->certificate(), NID_basic_constraints).find("CA:TRUE"),
            std::string::npos);
  EXPECT_EQ(X509_get_ext_by_NID(first->certificate(), NID_subject_key_identifier, -1) >= 0, true);
  auto again = MakeCa(dir.path);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->certificate_pem(), first->certificate_pem());  // a restart keeps the CA
}

TEST(CertificateAuthorityTest, UnusableFilesAreRefusedWithTheReason) {
  TempDir a, b;
  ASSERT_TRUE(MakeCa(a.path));
  ASSERT_TRUE(MakeCa(b.path));
  auto refused = [](const CaOptions& o, const std::string& why) {
    auto ca = CertificateAuthority::LoadOrCreate(o);
    ASSERT_FALSE(ca.ok());
    EXPECT_NE(ca.status().message().find(why), std::string::npos) << ca.status().message();
  };
  refused({GeneratedCaCertPath(a.path), "", ""}, "go together");
  refused({GeneratedCaCertPath(a.path), GeneratedCaKeyPath(b.path), ""}, "does not match");
  refused({a.path + "/missing.crt", GeneratedCaKeyPath(a.path), ""}, "cannot read");
  chmod(GeneratedCaKeyPath(a.path).c_str(), 0644);
  refused({GeneratedCaCertPath(a.path), GeneratedCaKeyPath(a.path), ""}, "chmod 600");
  chmod(GeneratedCaKeyPath(a.path).c_str(), 0600);
  auto supplied = CertificateAuthority::LoadOrCreate(
      {GeneratedCaCertPath(a.path), GeneratedCaKeyPath(a.path), ""});
  EXPECT_TRUE(supplied.ok()) << supplied.status().message();
}

// A generated CA in a temporary directory, a fake clock, and a cache of `capacity` names.
class LeafCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca = MakeCa(dir.path);
    ASSERT_TRUE(ca);
  }
  LeafCache Cache(size_t capacity = 100) { return LeafCache(*ca, clock, {hours(24), capacity}); }

  TempDir dir;
  std::unique_ptr<CertificateAuthority> ca;
  FakeClock clock;
};

TEST_F(LeafCacheTest, LeavesPassStrictVerificationForNamesAndAddresses) {
  LeafCache leaves = Cache();
  const time_t now = system_clock::to_time_t(clock.now);
  for (std::string name : {"api.example.test", "127.0.0.5", "::1"}) {
    SCOPED_TRACE(name);
    auto leaf = leaves.Get(name);
    ASSERT_TRUE(leaf.ok()) << leaf.status().message();
    X509* cert = leaf.value()->certificate.get();
    EXPECT_EQ(Verify(ca->certificate(), cert, name, now), X509_V_OK);
    EXPECT_NE(Verify(ca->certificate(), cert, name == "::1" ? "::2" : "other.test", now),
              X509_V_OK);
    std::string san = Extension(cert, NID_subject_alt_name);
    EXPECT_NE(san.find(name == "::1" ? "IP Address:0:0:0:0:0:0:0:1"
                                     : (name[0] == '1' ? "IP Address:" : "DNS:") + name),
              std::string::npos)
        << san;
    // AKI names the CA's key; SKI is there; the key is EC P-256, one for every leaf.
    EXPECT_EQ(Extension(cert, NID_authority_key_identifier),
              Extension(ca->certificate(), NID_subject_key_identifier));
    EXPECT_FALSE(Extension(cert, NID_subject_key_identifier).empty());
    EXPECT_EQ(EVP_PKEY_get_bits(X509_get0_pubkey(cert)), 256);
    EXPECT_EQ(X509_check_ca(cert), 0);
    // Short validity: not after a day, and expired for a verifier a day and an hour on.
    EXPECT_EQ(Verify(ca->certificate(), cert, name, now + 25 * 3600), X509_V_ERR_CERT_HAS_EXPIRED);
    const ASN1_INTEGER* serial = X509_get0_serialNumber(cert);
    EXPECT_EQ(serial->length, 16);
    EXPECT_EQ(serial->type, V_ASN1_INTEGER);  // positive
  }
  auto one = leaves.Mint("same.test");
  auto two = leaves.Mint("same.test");
  ASSERT_TRUE(one.ok() && two.ok());
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(one.value()->certificate.get()),
                             X509_get0_serialNumber(two.value()->certificate.get())),
            0);
}

TEST_F(LeafCacheTest, CachedPerNameAndMintedAgainBeforeExpiry) {
  LeafCache leaves = Cache();
  auto a = leaves.Get("a.test");
  auto again = leaves.Get("a.test");
  ASSERT_TRUE(a.ok() && again.ok());
  EXPECT_EQ(a.value(), again.value());
  EXPECT_EQ(leaves.minted(), 1u);
  clock.now += hours(17);  // more than three quarters of its life left: kept
  EXPECT_EQ(leaves.Get("a.test").value(), a.value());
  clock.now += hours(2);  // less than a quarter left: renewed
  auto renewed = leaves.Get("a.test");
  EXPECT_NE(renewed.value(), a.value());
  EXPECT_EQ(leaves.minted(), 2u);
  EXPECT_EQ(Verify(ca->certificate(), renewed.value()->certificate.get(), "a.test",
                   system_clock::to_time_t(clock.now + hours(12))),
            X509_V_OK);
}

TEST_F(LeafCacheTest, LeastRecentlyUsedNamesAreEvicted) {
  LeafCache leaves = Cache(16);  // one name per shard
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(leaves.Get("n" + std::to_string(i) + ".test").ok());
  EXPECT_EQ(leaves.minted(), 200u);
  uint64_t before = leaves.minted();
  ASSERT_TRUE(leaves.Get("n0.test").ok());  // long evicted: minted again
  EXPECT_EQ(leaves.minted(), before + 1);
}

TEST_F(LeafCacheTest, ConcurrentHandshakesForOneNameWaitForOneMint) {
  LeafCache leaves = Cache();
  std::atomic<bool> go{false};
  std::vector<std::shared_ptr<const Leaf>> got(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < got.size(); ++i) {
    threads.emplace_back([&, i] {
      while (!go.load()) {
      }
      got[i] = leaves.Get("busy.test").value();
    });
  }
  go = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(leaves.minted(), 1u);
  for (const auto& leaf : got) EXPECT_EQ(leaf, got[0]);
}

}  // namespace
}  // namespace airlock::tls
