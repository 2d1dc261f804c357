// libpsl-backed public suffix list. The psl_ctx_t is loaded once and only read afterwards.
#include "gateway/policy/public_suffix.h"

#include <libpsl.h>

#include <cstdlib>
#include <string>

namespace airlock::policy {
namespace {

class LibPslList final : public PublicSuffixList {
 public:
  LibPslList() {
    ctx_ = psl_latest(nullptr);
    owned_ = ctx_ != nullptr;
    if (!ctx_) ctx_ = psl_builtin();
    if (!ctx_) {
      // Without suffix data wildcard validation would silently weaken; refuse to run.
      std::abort();
    }
  }
  ~LibPslList() override {
    if (owned_) psl_free(const_cast<psl_ctx_t*>(ctx_));
  }
  LibPslList(const LibPslList&) = delete;
  LibPslList& operator=(const LibPslList&) = delete;

  bool IsPublicSuffix(std::string_view domain) const override {
    std::string d(domain);
    return psl_is_public_suffix2(ctx_, d.c_str(), PSL_TYPE_ANY | PSL_TYPE_NO_STAR_RULE) != 0;
  }

 private:
  const psl_ctx_t* ctx_ = nullptr;
  bool owned_ = false;
};

}  // namespace

const PublicSuffixList& SystemPublicSuffixList() {
  static const LibPslList list;
  return list;
}

}  // namespace airlock::policy
