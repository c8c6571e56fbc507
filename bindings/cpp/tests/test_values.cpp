// Values, results, errors and argument checks: what the binding does before (or without) the
// relay. Clients are created (which never connects) but these calls never reach the relay.
#include <cstring>
#include <limits>
#include <type_traits>

#include "common.hpp"

using namespace noxy_test;

static_assert(static_cast<std::int32_t>(noxy::ErrorCode::ok) == 0);
static_assert(static_cast<std::int32_t>(noxy::ErrorCode::invalid_argument) == 1);
static_assert(static_cast<std::int32_t>(noxy::ErrorCode::invalid_payload) == 2);
static_assert(static_cast<std::int32_t>(noxy::ErrorCode::unavailable) == 3);
static_assert(static_cast<std::int32_t>(noxy::ErrorCode::deadline_exceeded) == 4);
static_assert(static_cast<std::int32_t>(noxy::ErrorCode::unauthenticated) == 5);
static_assert(static_cast<std::int32_t>(noxy::ErrorCode::permission_denied) == 6);
static_assert(static_cast<std::int32_t>(noxy::ErrorCode::rejected) == 7);
static_assert(static_cast<std::int32_t>(noxy::ErrorCode::not_found) == 8);
static_assert(static_cast<std::int32_t>(noxy::ErrorCode::wait_timed_out) == 9);
static_assert(static_cast<std::int32_t>(noxy::ErrorCode::cancelled) == 10);
static_assert(static_cast<std::int32_t>(noxy::ErrorCode::no_decision_id) == 11);
static_assert(static_cast<std::int32_t>(noxy::ErrorCode::protocol) == 12);
static_assert(static_cast<std::int32_t>(noxy::ErrorCode::internal) == 13);
static_assert(static_cast<std::int32_t>(noxy::Outcome::approved) == 1);
static_assert(static_cast<std::int32_t>(noxy::DeliveryStatus::error) == 4);
static_assert(static_cast<std::int32_t>(noxy::LogLevel::trace) == 5);
// Move-only handles; results and options are values.
static_assert(!std::is_copy_constructible_v<noxy::Client> &&
              std::is_nothrow_move_constructible_v<noxy::Client>);
static_assert(!std::is_copy_constructible_v<noxy::Operation> &&
              std::is_nothrow_move_constructible_v<noxy::Operation>);
static_assert(std::is_copy_constructible_v<noxy::Config> &&
              std::is_copy_constructible_v<noxy::DecisionResult>);

TEST(Values, VersionIsTheHeaders) {
  EXPECT_EQ(noxy::version(), NOXY_VERSION_STRING);
  EXPECT_EQ(std::to_string(NOXY_VERSION_MAJOR) + "." + std::to_string(NOXY_VERSION_MINOR) + "." +
                std::to_string(NOXY_VERSION_PATCH),
            NOXY_VERSION_STRING);
}

TEST(Values, CodesAreNamedAsInC) {
  const char* names[] = {"ok",
                         "invalid_argument",
                         "invalid_payload",
                         "unavailable",
                         "deadline_exceeded",
                         "unauthenticated",
                         "permission_denied",
                         "rejected",
                         "not_found",
                         "wait_timed_out",
                         "cancelled",
                         "no_decision_id",
                         "protocol",
                         "internal"};
  for (std::int32_t code = 0; code <= 13; ++code) {
    EXPECT_EQ(noxy::to_string(static_cast<noxy::ErrorCode>(code)), names[code]) << code;
  }
  EXPECT_EQ(noxy::to_string(static_cast<noxy::ErrorCode>(99)), "unknown");
  EXPECT_EQ(noxy::to_string(noxy::Outcome::expired), "EXPIRED");
  EXPECT_EQ(noxy::to_string(static_cast<noxy::Outcome>(42)), "UNKNOWN");
  EXPECT_EQ(noxy::to_string(noxy::DeliveryStatus::queued), "QUEUED");
}

TEST(Values, ResultHoldsAValueOrAnError) {
  noxy::Result<std::string> value(std::string("fine"));
  ASSERT_TRUE(value.ok());
  EXPECT_TRUE(static_cast<bool>(value));
  EXPECT_EQ(*value, "fine");
  EXPECT_EQ(value->size(), 4u);
  EXPECT_EQ(value.code(), noxy::ErrorCode::ok);
  EXPECT_EQ(value.error().code, noxy::ErrorCode::ok);
  EXPECT_TRUE(value.error().message.empty());
  EXPECT_EQ(value.value_or("other"), "fine");

  noxy::Result<std::string> failed(noxy::Error{noxy::ErrorCode::not_found, "no such decision", {}});
  EXPECT_FALSE(failed.ok());
  EXPECT_FALSE(static_cast<bool>(failed));
  EXPECT_EQ(failed.code(), noxy::ErrorCode::not_found);
  EXPECT_EQ(failed.error().message, "no such decision");
  EXPECT_EQ(failed.value_or("other"), "other");
  noxy::Error taken = std::move(failed).error();
  EXPECT_EQ(taken.message, "no such decision");

  // A move-only value moves out.
  noxy::Result<std::unique_ptr<int>> owned(std::make_unique<int>(7));
  std::unique_ptr<int> moved = std::move(owned).value();
  ASSERT_NE(moved, nullptr);
  EXPECT_EQ(*moved, 7);

  noxy::Result<void> done;
  EXPECT_TRUE(done.ok());
  done.value();  // no error: nothing happens
  noxy::Result<void> refused(noxy::Error{noxy::ErrorCode::cancelled, "closed", {}});
  EXPECT_EQ(refused.code(), noxy::ErrorCode::cancelled);
}

TEST(Values, ValueOfAnErrorThrows) {
  noxy::Result<int> failed(noxy::Error{noxy::ErrorCode::wait_timed_out, "wait timed out after 1s", {}});
  try {
    (void)failed.value();
    FAIL() << "value() did not throw";
  } catch (const noxy::Exception& e) {
    EXPECT_EQ(e.error().code, noxy::ErrorCode::wait_timed_out);
    EXPECT_STREQ(e.what(), "wait_timed_out: wait timed out after 1s");
  }
  noxy::Result<void> refused(noxy::Error{noxy::ErrorCode::cancelled, "closed", {}});
  EXPECT_THROW(refused.value(), noxy::Exception);
  EXPECT_THROW((void)*failed, noxy::Exception);
}

TEST(Values, ConfigErrorsNameTheField) {
  noxy::Config config;
  auto missing = noxy::Client::create(config);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.code(), noxy::ErrorCode::invalid_argument);
  EXPECT_NE(missing.error().message.find("endpoint"), std::string::npos) << missing.error().message;

  config.endpoint = "https://relay.example:8443/";
  auto no_token = noxy::Client::create(config);
  EXPECT_NE(no_token.error().message.find("app_token"), std::string::npos) << no_token.error().message;

  config.app_token = "token";
  auto with = [&](auto change) {
    noxy::Config changed = config;
    change(changed);
    return noxy::Client::create(changed);
  };
  auto expect_refused = [](const noxy::Result<noxy::Client>& result, std::string_view field) {
    EXPECT_EQ(result.code(), noxy::ErrorCode::invalid_argument) << field;
    EXPECT_NE(result.error().message.find(field), std::string::npos)
        << "'" << result.error().message << "' lacks '" << field << "'";
  };
  expect_refused(with([](noxy::Config& c) { c.ca_pem = "not a certificate"; }), "ca_pem");
  expect_refused(with([](noxy::Config& c) { c.ca_pem_file = "/nonexistent/ca.pem"; }), "ca_pem_path");
  expect_refused(with([](noxy::Config& c) { c.decision_ttl = 0s; }), "decision_ttl_seconds");
  expect_refused(with([](noxy::Config& c) { c.worker_threads = 0; }), "worker_threads");
  expect_refused(with([](noxy::Config& c) { c.max_concurrent_requests = 0; }), "max_concurrent_requests");
  expect_refused(with([](noxy::Config& c) { c.connect_timeout = 0ms; }), "connect_timeout");
  expect_refused(with([](noxy::Config& c) { c.user_agent = "bad\nagent"; }), "user_agent");
  expect_refused(with([](noxy::Config& c) { c.retry_backoff = noxy::RetryBackoff{100ms, 0.5, 1s, 0.1}; }),
                 "retry.multiplier");
  expect_refused(with([](noxy::Config& c) { c.retry_budget = std::chrono::hours(24 * 366); }),
                 "retry.budget");
  // Values the C types cannot hold are refused by the binding, by name.
  expect_refused(with([](noxy::Config& c) { c.connect_timeout = -1ms; }),
                 "connect_timeout: must not be negative");
  expect_refused(with([](noxy::Config& c) { c.decision_ttl = std::chrono::seconds(1LL << 40); }),
                 "decision_ttl_seconds: is out of range");
  expect_refused(with([](noxy::Config& c) { c.retry_backoff = noxy::RetryBackoff{-1ms, 2.0, 1s, 0.1}; }),
                 "retry.initial_backoff");
  // Every setting at once, valid: the client is created.
  auto full = with([](noxy::Config& c) {
    c.decision_ttl = 120s;
    c.connect_timeout = 2s;
    c.request_timeout = 5s;
    c.max_attempts = 3;
    c.retry_backoff = noxy::RetryBackoff{10ms, 2.0, 100ms, 0.1};
    c.retry_budget = 5s;
    c.worker_threads = 1;
    c.max_concurrent_requests = 64;
    c.shared_runtime = false;
    c.user_agent = "noxy-cpp-tests/1";
  });
  EXPECT_TRUE(full.ok()) << full.error().message;
}

TEST(Values, StringsWithNulAreRefusedBeforeC) {
  const std::string with_nul("alice\0bob", 9);
  noxy::Config config = relay_config();
  config.endpoint = std::string("127.0.0.1:1\0evil", 16);
  auto created = noxy::Client::create(config);
  EXPECT_EQ(created.code(), noxy::ErrorCode::invalid_argument);
  EXPECT_EQ(created.error().message, "endpoint: contains a NUL byte");
  config = relay_config(std::string("tok\0en", 6));
  EXPECT_EQ(noxy::Client::create(config).error().message, "app_token: contains a NUL byte");

  // If "alice\0bob" reached C, the library would read "alice" and route to her.
  noxy::Client client = relay_client();
  auto sent = client.send_and_wait(with_nul, kPayload, {}, fast_wait());
  EXPECT_EQ(sent.code(), noxy::ErrorCode::invalid_argument);
  EXPECT_EQ(sent.error().message, "identity_id: contains a NUL byte");
  EXPECT_EQ(client.send_decision(with_nul, kPayload).error().message, "identity_id: contains a NUL byte");
  EXPECT_EQ(client.get_decision_outcome(with_nul, kAlice).error().message,
            "decision_id: contains a NUL byte");
  EXPECT_EQ(client.get_decision_outcome("d", with_nul).error().message, "identity_id: contains a NUL byte");
  EXPECT_EQ(client.wait_for_outcome(with_nul, kAlice).error().message, "decision_id: contains a NUL byte");
  EXPECT_EQ(client.get_identity_devices(with_nul).error().message, "identity_id: contains a NUL byte");
  noxy::SendOptions send;
  send.idempotency_key = std::string("key\0", 4);
  EXPECT_EQ(client.send_decision(kAlice, kPayload, send).error().message,
            "idempotency_key: contains a NUL byte");

  // Async: the future holds the error at once; the callable form returns it and never calls.
  auto future = client.get_identity_devices_async(with_nul);
  ASSERT_EQ(future.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(future.get().error().message, "identity_id: contains a NUL byte");
  auto [alive, destroyed] = signal();
  bool called = false;
  auto started = client.send_and_wait_async(
      with_nul, kPayload, {}, {},
      [alive = alive, &called](noxy::Result<noxy::DecisionResult>) noexcept { called = true; });
  alive.reset();
  EXPECT_EQ(started.error().message, "identity_id: contains a NUL byte");
  // The callable was destroyed without being called, on this thread, before the call returned.
  ASSERT_EQ(destroyed.wait_for(0s), std::future_status::ready);
  EXPECT_FALSE(called);
}

TEST(Values, OptionsOutOfRange) {
  noxy::Client client = relay_client();
  noxy::WaitOptions wait;
  wait.max_wait = -5ms;
  EXPECT_EQ(client.wait_for_outcome("d", kAlice, wait).error().message, "max_wait: must not be negative");
  wait = {};
  wait.multiplier = 0.5;  // checked by the library
  auto refused = client.wait_for_outcome("d", kAlice, wait);
  EXPECT_EQ(refused.code(), noxy::ErrorCode::invalid_argument);
  EXPECT_NE(refused.error().message.find("multiplier"), std::string::npos) << refused.error().message;
  wait = {};
  wait.initial_interval = 1s;
  wait.max_interval = 10ms;  // a combination the call checks
  EXPECT_NE(client.send_and_wait(kAlice, kPayload, {}, wait).error().message.find("max_interval"),
            std::string::npos);
  noxy::SendOptions send;
  send.ttl = -1s;
  EXPECT_EQ(client.send_decision(kAlice, kPayload, send).error().message,
            "ttl_seconds: must not be negative");
  send = {};
  send.idempotency_key = "";
  EXPECT_NE(client.send_decision(kAlice, kPayload, send).error().message.find("idempotency_key"),
            std::string::npos);
  EXPECT_EQ(client.drain(-1ms).error().message, "timeout_ms: must not be negative");
}

TEST(Values, MovedFromObjectsAnswerInvalidArgument) {
  noxy::Client first = relay_client();
  ASSERT_TRUE(static_cast<bool>(first));
  noxy::Client second = std::move(first);
  EXPECT_TRUE(static_cast<bool>(second));
  EXPECT_FALSE(static_cast<bool>(first));  // NOLINT(bugprone-use-after-move): that is the test
  EXPECT_EQ(first.native_handle(), nullptr);
  auto expect_client_refused = [](noxy::ErrorCode code, const std::string& message) {
    EXPECT_EQ(code, noxy::ErrorCode::invalid_argument);
    EXPECT_NE(message.find("client"), std::string::npos) << message;
  };
  auto quota = first.get_quota();
  expect_client_refused(quota.code(), quota.error().message);
  auto sent = first.send_and_wait(kAlice, kPayload);
  expect_client_refused(sent.code(), sent.error().message);
  auto future = first.get_quota_async();
  ASSERT_EQ(future.wait_for(0s), std::future_status::ready);
  auto async_quota = future.get();
  expect_client_refused(async_quota.code(), async_quota.error().message);
  auto started = first.get_quota_async([](noxy::Result<noxy::Quota>) noexcept {});
  expect_client_refused(started.code(), started.error().message);
  expect_client_refused(first.close().code(), first.close().error().message);
  expect_client_refused(first.drain(0ms).code(), first.drain(0ms).error().message);
  noxy::Client empty;
  expect_client_refused(empty.get_identity_devices(kAlice).code(), "client");

  // Moving back and assigning over a live client work.
  first = std::move(second);
  EXPECT_TRUE(static_cast<bool>(first));
  EXPECT_FALSE(static_cast<bool>(second));  // NOLINT(bugprone-use-after-move)

  noxy::Operation none;
  EXPECT_FALSE(static_cast<bool>(none));
  auto cancelled = none.cancel();
  EXPECT_EQ(cancelled.code(), noxy::ErrorCode::invalid_argument);
  EXPECT_NE(cancelled.error().message.find("operation"), std::string::npos) << cancelled.error().message;

  noxy::LogSink sink = [](noxy::LogLevel, std::string_view) noexcept {};
  noxy::LogSink moved = std::move(sink);
  EXPECT_TRUE(static_cast<bool>(moved));
  EXPECT_FALSE(static_cast<bool>(sink));  // NOLINT(bugprone-use-after-move)
  sink(noxy::LogLevel::info, "an empty sink ignores this");
}

// Destroying or assigning over a Client releases the C client: its log sink, which the library
// keeps until the client is gone, is destroyed then (and not before).
TEST(Values, DestroyingTheClientReleasesIt) {
  auto [alive, destroyed] = signal();
  noxy::Config config = relay_config();
  config.log = [alive = alive](noxy::LogLevel, std::string_view) noexcept {};
  config.log_level = noxy::LogLevel::debug;
  alive.reset();
  noxy::Client client = noxy::Client::create(config).value();
  config.log = {};  // the only owner left is the library
  EXPECT_EQ(destroyed.wait_for(0s), std::future_status::timeout);
  client = noxy::Client();  // move-assigning releases the old client (noxy_free)
  EXPECT_TRUE(ready(destroyed));
}
