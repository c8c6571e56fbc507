// Helpers of the C++ binding's tests: the development relay that bindings/cpp/run.sh started
// (NOXY_TEST_ENDPOINT, NOXY_TEST_CA_PATH, NOXY_TEST_TOKEN; identities alice approves, bob
// rejects, carol never answers, steps approves after 300 ms, team has three devices that
// approve, ignore and reject after 30 s; nobody has no devices), clients, and a signal that
// tells when an object captured by a callable was destroyed.
#ifndef NOXY_CPP_TESTS_COMMON_HPP
#define NOXY_CPP_TESTS_COMMON_HPP

#include <gtest/gtest.h>
#include <pthread.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>

#include "noxy.hpp"

// GoogleTest prints the binding's enums by name (found by argument-dependent lookup).
namespace noxy {
inline void PrintTo(ErrorCode code, std::ostream* out) { *out << to_string(code); }
inline void PrintTo(Outcome outcome, std::ostream* out) { *out << to_string(outcome); }
inline void PrintTo(DeliveryStatus status, std::ostream* out) { *out << to_string(status); }
}  // namespace noxy

namespace noxy_test {

using namespace std::chrono_literals;

inline constexpr std::string_view kAlice = "alice";
inline constexpr std::string_view kBob = "bob";
inline constexpr std::string_view kCarol = "carol";
inline constexpr std::string_view kSteps = "steps";
inline constexpr std::string_view kTeam = "team";
inline constexpr std::string_view kNobody = "nobody";
inline constexpr std::string_view kPayload =
    R"({"kind":"tool","tool":"deploy","title":"Deploy to prod","args":{"n":1}})";
// SHA-256 of kPayload's bytes, computed outside the library (the C tests use the same).
inline constexpr std::string_view kPayloadSha256 =
    "3554dbfe7a822daecb3c966a81870d608bc89afdab20f2ae4e7c535db8672e4f";
// How long a test waits for a condition before it fails (never a sleep).
inline constexpr auto kPatience = 30s;

inline std::string env(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && value[0] != '\0' ? value : fallback;
}

inline std::string token() { return env("NOXY_TEST_TOKEN", "test-token"); }

inline noxy::Config relay_config(const std::string& app_token = token()) {
  noxy::Config config;
  config.endpoint = env("NOXY_TEST_ENDPOINT", "127.0.0.1:1");
  config.app_token = app_token;
  if (const char* ca = std::getenv("NOXY_TEST_CA_PATH")) config.ca_pem_file = ca;
  config.request_timeout = 10s;
  return config;
}

// A client of the relay; a failure to create one fails the test (value() throws, or aborts
// without exceptions).
inline noxy::Client relay_client(const std::string& app_token = token()) {
  return noxy::Client::create(relay_config(app_token)).value();
}

// A client of a loopback port nothing listens on, without retries: its calls fail fast.
inline noxy::Client unreachable_client() {
  noxy::Config config;
  config.endpoint = "127.0.0.1:1";
  config.app_token = token();
  config.connect_timeout = 2s;
  config.max_attempts = 1;
  return noxy::Client::create(config).value();
}

// Fast polling so that tests finish quickly, with a generous budget.
inline noxy::WaitOptions fast_wait(std::chrono::milliseconds max_wait = 20s) {
  noxy::WaitOptions wait;
  wait.initial_interval = 25ms;
  wait.multiplier = 1.5;
  wait.max_interval = 250ms;
  wait.max_wait = max_wait;
  return wait;
}

inline std::string hex(const noxy::Digest& digest) {
  std::string out;
  char byte[3];
  for (std::uint8_t b : digest) {
    std::snprintf(byte, sizeof byte, "%02x", b);
    out += byte;
  }
  return out;
}

inline std::string thread_name() {
  char name[32] = {0};
  pthread_getname_np(pthread_self(), name, sizeof name);
  return name;
}

// Waits for a future within kPatience and returns its value; a future still not ready then
// fails the test (the returned Result then holds an internal error).
template <typename T>
noxy::Result<T> get(std::future<noxy::Result<T>>& future, std::chrono::milliseconds patience = kPatience) {
  if (future.wait_for(patience) != std::future_status::ready) {
    ADD_FAILURE() << "the future was not ready within " << patience.count() << " ms";
    return noxy::Error{noxy::ErrorCode::internal, "test: not ready", {}};
  }
  return future.get();
}

// Tells when the last owner of a shared_ptr<Signal> let go of it: capture the shared_ptr in a
// callable, drop the test's own copy, and `destroyed` becomes ready once the callable is gone.
struct Signal {
  std::promise<std::string> promise;  // the name of the thread that destroyed it
  ~Signal() { promise.set_value(thread_name()); }
};

inline std::pair<std::shared_ptr<Signal>, std::future<std::string>> signal() {
  auto s = std::make_shared<Signal>();
  std::future<std::string> destroyed = s->promise.get_future();
  return {std::move(s), std::move(destroyed)};
}

inline bool ready(std::future<std::string>& future, std::chrono::milliseconds patience = kPatience) {
  return future.wait_for(patience) == std::future_status::ready;
}

}  // namespace noxy_test

#endif
