// Must NOT compile: a completion callable that may throw (not noexcept).
#include "noxy.hpp"

void start(const noxy::Client& client) {
  (void)client.get_quota_async([](noxy::Result<noxy::Quota>) {});
}
