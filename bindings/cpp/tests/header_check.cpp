// noxy.hpp alone compiles cleanly (-Wall -Wextra -Werror -pedantic) in every mode the CMake
// build asks for: C++17 and C++20, with and without exceptions.
#include "noxy.hpp"

int noxy_header_check() {
  noxy::Config config;
  config.endpoint = "127.0.0.1:1";
  auto client = noxy::Client::create(config);
  return client.ok() ? 0 : static_cast<int>(client.code());
}
